"""JSON Patch (RFC 6902) on a resource, refusing changes to what identifies it."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from fhir_server.errors import FhirError

PROTECTED = ("resourceType", "id")


def apply_json_patch(resource: dict[str, Any], operations: Any) -> dict[str, Any]:
    if not isinstance(operations, list):
        raise FhirError(400, "structure", "A JSON Patch is an array of operations")
    try:
        patched = jsonpatch.JsonPatch(operations).apply(copy.deepcopy(resource))
    except jsonpatch.JsonPatchTestFailed as exc:
        raise FhirError(422, "processing", f"JSON Patch test failed: {exc}") from exc
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError, ValueError) as exc:
        raise FhirError(400, "invalid", f"The JSON Patch cannot be applied: {exc}") from exc
    if not isinstance(patched, dict):
        raise FhirError(422, "processing", "The JSON Patch does not leave a resource")
    for name in PROTECTED:
        if patched.get(name) != resource.get(name):
            raise FhirError(422, "processing", f"A patch may not change {name}", [name])
    return patched
