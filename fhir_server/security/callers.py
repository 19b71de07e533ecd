"""Who is asking: every repository call names its caller.

A placeholder until the callers work (issue 11, tokens and SMART scopes) lands: the same path and
the same fields, so that branch replaces this file rather than merging two definitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Caller:
    # patient, representative, professional, system, admin, or platform (the server itself).
    kind: str
    id: str
    scopes: frozenset[str] = field(default_factory=frozenset)


# The platform acts for itself with full access: internal intake (HL7 v2 over MLLP), migrations,
# command-line tools, and every HTTP request until tokens are verified.
PLATFORM = Caller("platform", "platform", frozenset({"system/*.cruds"}))
