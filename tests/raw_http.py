"""HTTP/1.1 over a bare socket, for requests an HTTP client library will not send as written:
a Content-Length the body does not honour, a chunked body of any size."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return orjson.loads(self.body)


def _read_response(sock: socket.socket) -> RawResponse:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            raise ConnectionError(f"connection closed before a response: {data!r}")
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
    return RawResponse(int(status_line.split()[1]), headers, body)


def send(url: str, method: str, headers: dict[str, str], body: Iterable[bytes], timeout: float) -> RawResponse:
    """Send the head, then the body pieces as given (already framed), while reading the answer.

    The server may answer and close before the body is sent in full: the answer is read on this
    thread as soon as it arrives, and the sender stops at the first refused write.
    """
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    head = f"{method} {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"

    def write() -> None:
        try:
            sock.sendall(head.encode("latin-1"))
            for piece in body:
                sock.sendall(piece)
        except OSError:
            pass  # the server has answered and closed: what it said is read below

    sender = threading.Thread(target=write, daemon=True)
    sender.start()
    try:
        return _read_response(sock)
    finally:
        sock.close()
        sender.join(timeout)


def chunked(pieces: Iterable[bytes]) -> Iterable[bytes]:
    """HTTP/1.1 chunked transfer coding of `pieces`, with its closing chunk."""
    for piece in pieces:
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"
