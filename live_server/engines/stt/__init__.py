"""Recognisers: Whisper and pocketsphinx in worker processes, any OpenAI-compatible endpoint."""
