"""A WebSocket client that writes raw frames, as a fuzzer or a broken client does: it goes on
sending whatever the server says, and can send what no library would (invalid UTF-8, frames
over the server's limit). The handshake and the frames read back are parsed by the
`websockets` library's sans-I/O client."""

from __future__ import annotations

import asyncio
import os
import socket
import struct

from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.uri import parse_uri
from websockets.utils import apply_mask


def masked_frame(payload: bytes, opcode: Opcode = Opcode.TEXT) -> bytes:
    """One final client frame, masked as RFC 6455 requires, with no check of its payload."""
    n = len(payload)
    head = bytes([0x80 | opcode.value])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    return head + mask + apply_mask(payload, mask)


class RawSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.protocol: ClientProtocol
        self.close: Close | None = None  # the server's close frame, once read
        self.texts: list[str] = []

    @classmethod
    async def open(cls, url: str) -> RawSocket:
        uri = parse_uri(url)
        reader, writer = await asyncio.open_connection(uri.host, uri.port)
        raw = cls(reader, writer)
        raw.protocol = ClientProtocol(uri, max_size=None)
        raw.protocol.send_request(raw.protocol.connect())
        writer.write(b"".join(raw.protocol.data_to_send()))
        while raw.protocol.state.name == "CONNECTING":
            data = await asyncio.wait_for(reader.read(1 << 16), 10)
            assert data, "the server closed during the handshake"
            raw.protocol.receive_data(data)
        raw.protocol.events_received()  # the handshake's response
        return raw

    async def read_until_closed(self) -> None:
        """Read the server's frames until the connection ends; a reset ends it too (what it
        threw away is then simply never seen)."""
        try:
            while data := await self.reader.read(1 << 16):
                self.protocol.receive_data(data)
                for event in self.protocol.events_received():
                    if isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                        self.close = Close.parse(event.data)
                    elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                        self.texts.append(event.data.decode())
        except (ConnectionResetError, BrokenPipeError):
            return

    async def send_raw(self, frame: bytes) -> bool:
        """Write one frame; False once the connection refuses more."""
        try:
            self.writer.write(frame)
            await self.writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            return False
        return True

    def reset(self) -> None:
        """Vanish: close with a TCP reset, as a client whose machine went away."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()
