"""HL7 v2 escape sequences (v2.5 chapter 2.7): decoding on read, encoding on write."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The five delimiters a message declares in MSH-1 and MSH-2, plus its character set codec."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    codec: str = "utf-8"

    @classmethod
    def from_msh(cls, field: str, encoding_characters: str, codec: str) -> Delimiters:
        # MSH-2 may legitimately have fewer than four characters (no escape, no subcomponent);
        # a missing delimiter is the empty string, which never splits anything.
        chars = (encoding_characters + "    ")[:4]
        component, repetition, escape_char, subcomponent = (
            c if c.strip() else "" for c in chars
        )
        return cls(
            field=field,
            component=component or "^",
            repetition=repetition,
            escape=escape_char,
            subcomponent=subcomponent,
            codec=codec,
        )


def unescape(text: str, delimiters: Delimiters) -> str:
    """Decode escape sequences; unknown or formatting-only sequences are dropped, not kept as noise."""
    esc = delimiters.escape
    if not esc or esc not in text:
        return text
    out: list[str] = []
    i = 0
    length = len(text)
    while i < length:
        start = text.find(esc, i)
        if start < 0:
            out.append(text[i:])
            break
        end = text.find(esc, start + 1)
        if end < 0:
            # An unterminated escape is literal text, as a tolerant reader must assume.
            out.append(text[i:])
            break
        out.append(text[i:start])
        out.append(_decode_sequence(text[start + 1 : end], delimiters))
        i = end + 1
    return "".join(out)


def _decode_sequence(sequence: str, d: Delimiters) -> str:
    simple = {"F": d.field, "S": d.component, "T": d.subcomponent, "R": d.repetition, "E": d.escape}
    if sequence in simple:
        return simple[sequence]
    if sequence in (".br", ".sp"):
        return "\n"
    if sequence[:1] == "X" and len(sequence) > 1:
        try:
            return bytes.fromhex(sequence[1:]).decode(d.codec, errors="replace")
        except ValueError:
            return ""
    # \H\ \N\ (highlighting), \Cxxyy\ \Mxxyyzz\ (charset switches) and layout commands carry no text.
    return ""


def escape(text: str, d: Delimiters) -> str:
    """Encode text for a field so delimiters and line breaks survive the round trip."""
    if not d.escape:
        return text
    replacements = (
        (d.escape, f"{d.escape}E{d.escape}"),
        (d.field, f"{d.escape}F{d.escape}"),
        (d.component, f"{d.escape}S{d.escape}"),
        (d.repetition, f"{d.escape}R{d.escape}"),
        (d.subcomponent, f"{d.escape}T{d.escape}"),
    )
    for raw, encoded in replacements:
        if raw:
            text = text.replace(raw, encoded)
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", f"{d.escape}.br{d.escape}")
