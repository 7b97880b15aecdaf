"""Live Server: a WebSocket server for live voice and text conversation with an LLM."""

__version__ = "0.1.0"
