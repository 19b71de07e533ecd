"""A minimal MLLP client (HL7 v2 Minimal Lower Layer Protocol: <VT> message <FS><CR>) and the few
ER7 reads the HL7 v2 cases need. Sends one message, reads one acknowledgement."""

from __future__ import annotations

import socket

START, END = b"\x0b", b"\x1c\x0d"


def send(host: str, port: int, message: str, timeout: float = 30.0) -> str:
    """The acknowledgement the listener answers to `message` (segments separated by CR)."""
    with socket.create_connection((host, port), timeout=timeout) as connection:
        connection.sendall(START + message.encode("utf-8") + END)
        received = b""
        while END not in received:
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
    return received.removeprefix(START).split(b"\x1c")[0].decode("utf-8", errors="replace")


def segments(message: str, name: str) -> list[list[str]]:
    """The fields of every `name` segment (field 0 is the segment name)."""
    return [s.split("|") for s in message.replace("\n", "\r").split("\r") if s.startswith(name + "|")]


def field(message: str, name: str, number: int) -> str:
    found = segments(message, name)
    if not found:
        return ""
    # In MSH, field 1 is the separator itself: MSH-n is at index n-1 of the split.
    index = number - 1 if name == "MSH" else number
    return found[0][index] if index < len(found[0]) else ""
