"""The protocol-neutral core: a session, its turns, the events they emit, the history, voice
input and the decision that a turn has ended. Nothing here knows a wire format or the web
framework."""
