"""The AstrBot Live API: its frames (`frames`), the codec from the session's events to them,
the socket adapter from client frames to session commands, and chat mode. Nothing here is
read by the Realtime protocol."""
