"""MLLP (Minimal Lower Layer Protocol) over asyncio: <VT> message <FS><CR>, many per connection.

Broken framing never harms the listener: bytes before <VT> (including a stray <CR> after a
sender's <FS>) are skipped, a frame restarted with a second <VT> keeps only the last message,
an oversized frame or a connection closed mid-message closes that connection only.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CARRIAGE_RETURN = b"\x0d"

Handler = Callable[[bytes], Awaitable[bytes]]


class FrameTooLarge(Exception):
    """A frame longer than the listener accepts."""


def frame(message: bytes) -> bytes:
    return START_BLOCK + message + END_BLOCK + CARRIAGE_RETURN


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The next message on the stream, None at a clean end of stream (between frames).

    Raises FrameTooLarge past the reader's limit and asyncio.IncompleteReadError when the
    stream ends inside a frame.
    """
    try:
        await reader.readuntil(START_BLOCK)
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError as exc:
        raise FrameTooLarge("no start block within the size limit") from exc
    try:
        body = await reader.readuntil(END_BLOCK)
    except asyncio.LimitOverrunError as exc:
        raise FrameTooLarge("no end block within the size limit") from exc
    message = body[:-1]
    restart = message.rfind(START_BLOCK)
    if restart >= 0:
        # The sender abandoned a frame and started over: only the last one is a message.
        message = message[restart + 1 :]
    return message


async def start_mllp_server(
    host: str,
    port: int,
    handler: Handler,
    max_message_bytes: int = 64 * 1024 * 1024,
    tls: ssl.SSLContext | None = None,
    sock: socket.socket | None = None,
) -> asyncio.Server:
    """Listen for MLLP; each message is answered with `handler(message)` in arrival order.

    With `sock` (a listening socket bound by the parent of several workers), accept on it instead
    of binding host:port.
    """

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            while (message := await read_frame(reader)) is not None:
                writer.write(frame(await handler(message)))
                await writer.drain()
        except FrameTooLarge as exc:
            logger.warning("MLLP %s: %s (limit %d bytes), connection closed", peer, exc, max_message_bytes)
        except asyncio.IncompleteReadError:
            logger.warning("MLLP %s: connection closed inside a frame", peer)
        except (ConnectionError, ssl.SSLError):
            pass
        except Exception:
            logger.exception("MLLP %s: handler failed, connection closed", peer)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, asyncio.CancelledError):
                pass

    # The stream limit bounds what one frame may buffer: the message plus its framing bytes.
    if sock is not None:
        return await asyncio.start_server(serve, sock=sock, limit=max_message_bytes + 2, ssl=tls)
    return await asyncio.start_server(serve, host, port, limit=max_message_bytes + 2, ssl=tls)


async def mllp_send(host: str, port: int, message: bytes, timeout: float | None = None,
                    tls: ssl.SSLContext | None = None) -> bytes:
    """Send one framed message and return the framed answer's content (for tests and benchmarks)."""
    reader, writer = await asyncio.open_connection(host, port, limit=64 * 1024 * 1024, ssl=tls)
    try:
        writer.write(frame(message))
        await writer.drain()
        answer = await asyncio.wait_for(read_frame(reader), timeout)
        if answer is None:
            raise ConnectionError("the listener closed the connection without answering")
        return answer
    finally:
        writer.close()
        await writer.wait_closed()
