"""Each scope an app asks for, in plain French, for the consent page (policies/app-scopes.json)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from fhir_server.config import PROJECT_ROOT
from fhir_server.security.scopes import parse_scope

WORDING_FILE = PROJECT_ROOT / "policies" / "app-scopes.json"


@cache
def _wording() -> dict[str, Any]:
    return dict(json.loads(WORDING_FILE.read_text(encoding="utf-8")))


def phrase(scope: str) -> str:
    """`patient/DocumentReference.rs` -> "Consulter et rechercher : vos documents de santé"."""
    words = _wording()
    if scope in words["others"]:
        text = str(words["others"][scope])
        return text[0].upper() + text[1:]
    parsed = parse_scope(scope)
    if parsed is None:
        return scope
    actions = [words["actions"][letter] for letter in "cruds" if letter in parsed.letters]
    listed = ", ".join(actions[:-1]) + " et " + actions[-1] if len(actions) > 1 else actions[0]
    data = words["data"].get(parsed.resource_type, f"les données de type {parsed.resource_type}")
    narrowed = " (en partie seulement)" if parsed.criteria else ""
    return f"{listed[0].upper()}{listed[1:]} : {data}{narrowed}"
