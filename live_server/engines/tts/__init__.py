"""Voices: Piper and eSpeak NG embedded, Edge's online voices, any OpenAI-compatible endpoint."""
