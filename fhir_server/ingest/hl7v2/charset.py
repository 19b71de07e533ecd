"""Character set of a message, from MSH-18 (HL7 table 0211), mapped to Python codecs in a data file."""

from __future__ import annotations

from functools import cache

from fhir_server.ingest.hl7v2.mapfiles import load_json


@cache
def _table() -> dict:
    return load_json("charsets.json")


def codec_for(label: str) -> str | None:
    """Python codec for an MSH-18 label; None when the label is unknown."""
    table = _table()
    if not label.strip():
        return table["undeclared"]
    return table["codecs"].get(label.strip().upper())


def declared_charset(message: bytes) -> str:
    """MSH-18 (first repetition) read from the raw bytes: the header is ASCII in every 8-bit charset."""
    start = message.find(b"MSH")
    if start < 0:
        return ""
    end = len(message)
    for terminator in (b"\r", b"\n"):
        position = message.find(terminator, start)
        if 0 <= position < end:
            end = position
    header = message[start:end].decode("latin-1")
    if len(header) < 4:
        return ""
    fields = header.split(header[3])
    # fields[0] is "MSH" and fields[1] is MSH-2, so MSH-n is fields[n - 1].
    label = fields[17] if len(fields) > 17 else ""
    repetition = fields[1][1:2] if len(fields) > 1 else "~"
    return label.split(repetition)[0] if repetition else label


def decode_message(message: bytes) -> tuple[str, str, list[str]]:
    """(text, codec, warnings): decode with the declared charset, falling back rather than failing."""
    warnings: list[str] = []
    if message.startswith(b"\xef\xbb\xbf"):
        message = message[3:]
    label = declared_charset(message)
    codec = codec_for(label)
    if codec is None:
        warnings.append(f"unknown MSH-18 character set {label!r}; read as {_table()['undeclared']}")
        codec = _table()["undeclared"]
    try:
        return message.decode(codec), codec, warnings
    except UnicodeDecodeError as exc:
        fallback = _table()["fallback"]
        warnings.append(f"message is not valid {codec} (byte {exc.start}); read as {fallback}")
        return message.decode(fallback, errors="replace"), fallback, warnings
