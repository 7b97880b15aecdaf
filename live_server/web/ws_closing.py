"""uvicorn's WebSocket protocol, with a close frame that reaches a client still sending.

When a client's frame breaks the protocol (larger than `LIVE_MAX_FRAME_BYTES`: 1009; invalid
UTF-8 in a text frame: 1007), uvicorn writes the close frame and closes the TCP connection at
once. If the client is still sending, the kernel answers its next bytes with a reset, and a
reset throws away whatever the client had not read yet: the close frame with its code is lost,
and the client sees a broken pipe instead. Here the server half-closes after the close frame
and keeps reading (and dropping) what the client sends until the client closes its side (or
`ws_close_timeout` passes), as web servers do with a "lingering close". Until then the app is
told the client has gone, as uvicorn tells it once the connection is lost.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class LingeringCloseProtocol(WebSocketsSansIOProtocol):
    _failed = False  # uvicorn ended the connection itself: the app cannot send on it any more

    def handle_parser_exception(self) -> None:
        if self._failed:
            return  # what the client still sends is read and dropped by the parser
        self._failed = True
        close = self.conn.close_sent
        assert close is not None
        self.queue.put_nowait(
            {"type": "websocket.disconnect", "code": close.code, "reason": close.reason}
        )
        for data in self.conn.data_to_send():  # the close frame, then b"" for the end
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():
                self.transport.write_eof()
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        # The client's end of the stream closes the transport (`eof_received` returns None);
        # this bounds the wait for a client that never closes.
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)

    async def send(self, message: Any) -> None:
        if self._failed:
            raise ClientDisconnected()
        await super().send(message)
