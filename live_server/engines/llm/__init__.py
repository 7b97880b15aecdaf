"""Language models: the echo model, the embedded GGUF model, any OpenAI-compatible endpoint."""
