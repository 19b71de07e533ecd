"""The check every DocumentReference an adapter stores passes before anything is written: the PDSm
comprehensive profile it claims (the storage validates it again; this names what is missing in the
sender's terms, with the converter's remark on why, so the refusal says what to fix).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from fhir_server.config import Settings
from fhir_server.validation.passed import PASSED
from fhir_server.validation.profile_registry import ProfileRegistry
from fhir_server.validation.validator import validate_resource

_INDEX = re.compile(r"\[\d+\]")


@cache
def profile_registry() -> ProfileRegistry:
    """The server's profiles, as its configuration finds them (the offline validator reads them too)."""
    settings = Settings()
    return ProfileRegistry.load(settings.profiles_dir, settings.waivers())


@dataclass(frozen=True)
class Problem:
    element: str  # e.g. "DocumentReference.context.facilityType"
    code: str  # FHIR IssueType code of the validator's issue
    diagnostics: str

    def explained(self, remarks: list[str]) -> str:
        """The validator's words, then the remarks of the conversion about that element."""
        leaf = self.element.rsplit(".", 1)[-1].split(":")[0]
        why = [r for r in remarks if leaf in r]
        return "; ".join([self.diagnostics, *why])


def problems(document: dict[str, Any]) -> list[Problem]:
    """The errors of `document` against the profiles it claims (PDSm for what the adapters make)."""
    found = []
    registry = profile_registry()
    for issue in validate_resource(document, None, registry):
        if issue.severity not in ("error", "fatal"):
            continue
        element = _INDEX.sub("", issue.expression[0]) if issue.expression else "DocumentReference"
        found.append(Problem(element, issue.code, issue.diagnostics))
    if not found:
        # The transaction that stores it then need not check the same content again.
        PASSED.remember(registry, document)
    return found
