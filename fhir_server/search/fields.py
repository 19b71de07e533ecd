"""Names of the stored index fields for search parameter codes.

The embedded store refuses to index a field whose name holds anything but letters, digits and
underscores, and search codes hold '-' (`source-reference`) and the extracted variants ':'
(`type:text`). Codes never contain '_' except as a first character, so '-' -> '_' and ':' -> '__'
cannot collide.
"""

from __future__ import annotations

TEXT = "__text"
EXACT = "__exact"
OF_TYPE = "__of_type"
IDENTIFIER = "__identifier"


def field_key(code: str) -> str:
    return code.replace(":", "__").replace("-", "_")


def ix_field(code: str) -> str:
    return f"ix.{field_key(code)}"


def sk_field(code: str) -> str:
    return f"sk.{field_key(code)}"
