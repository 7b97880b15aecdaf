"""The Starlette app and its routes: the sockets (authenticate, then hand over to a protocol),
the HTTP chat API, `/v1/chat/completions` and the page."""
