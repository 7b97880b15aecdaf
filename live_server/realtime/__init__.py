"""The OpenAI Realtime API (`/v1/realtime`): the codec from the session's events to Realtime
server events, and the socket adapter from client events to session commands. Nothing here is
read by the AstrBot protocol."""
