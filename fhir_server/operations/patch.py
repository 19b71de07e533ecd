"""PATCH bodies: JSON Patch (RFC 6902) here, FHIRPath Patch (a Parameters resource) in
`fhirpath_patch`; both refuse changes to what identifies the resource.

A refusal names the operation (its index and kind) and its paths, never what the resource holds:
the libraries' own messages quote the document ("member 'x' not found in {...}", "{...} is not
equal to tested value"), which would put clinical data in an OperationOutcome. A failed `test`
answers 422: the patch is well-formed but cannot be processed against this version (RFC 5789 2.2);
any other failure is the client's patch not fitting the resource, 400.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

from fhir_server.errors import FhirError
from fhir_server.operations.fhirpath_patch import apply_fhirpath_patch

PROTECTED = ("resourceType", "id")
OPERATIONS = ("add", "remove", "replace", "move", "copy", "test")
# A client's path is echoed in diagnostics; an absurdly long one is cut.
_SHOWN_PATH = 200


def apply_patch(resource: dict[str, Any], patch: Any) -> dict[str, Any]:
    """A FHIRPath Patch (Parameters, an object) or a JSON Patch (an array)."""
    if isinstance(patch, dict):
        return apply_fhirpath_patch(resource, patch)
    return apply_json_patch(resource, patch)


def apply_json_patch(resource: dict[str, Any], operations: Any) -> dict[str, Any]:
    if not isinstance(operations, list):
        raise FhirError(400, "structure", "A JSON Patch is an array of operations")
    patched: Any = copy.deepcopy(resource)
    resource_type = str(resource.get("resourceType", ""))
    for index, operation in enumerate(operations):
        where = f"JSON Patch operation at index {index} ({_describe(operation)})"
        expression = _expression(resource_type, operation)
        # Applied one by one on our own copy, so a failure is pinned on its operation.
        try:
            patched = jsonpatch.JsonPatch([operation]).apply(patched, in_place=True)
        except jsonpatch.JsonPatchTestFailed:
            raise FhirError(422, "processing", f"{where}: the resource does not hold the tested value", expression) from None
        except jsonpatch.InvalidJsonPatch:
            raise FhirError(400, "invalid", f"{where} is not a valid RFC 6902 operation", expression) from None
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError, KeyError, IndexError, ValueError):
            raise FhirError(400, "invalid", f"{where} cannot be applied: its path does not name a place in the resource",
                            expression) from None
    if not isinstance(patched, dict):
        raise FhirError(422, "processing", "The JSON Patch does not leave a resource")
    for name in PROTECTED:
        if patched.get(name) != resource.get(name):
            raise FhirError(422, "processing", f"A patch may not change {name}", [name])
    return patched


def _describe(operation: Any) -> str:
    """`test /name/0`, `copy /a -> /b`: the client's own op and paths, nothing from the resource."""
    if not isinstance(operation, dict):
        return "not an object"
    op = operation.get("op")
    parts = [op if op in OPERATIONS else "unknown op"]
    if isinstance(operation.get("from"), str):
        parts.append(operation["from"][:_SHOWN_PATH] + " ->")
    if isinstance(operation.get("path"), str):
        parts.append(operation["path"][:_SHOWN_PATH] or "(whole resource)")
    return " ".join(parts)


def _expression(resource_type: str, operation: Any) -> list[str]:
    """The FHIRPath-style location of a JSON Pointer (`/name/0/family` -> `Patient.name[0].family`)."""
    path = operation.get("path") if isinstance(operation, dict) else None
    if not isinstance(path, str) or not path.startswith("/") or not resource_type:
        return []
    expression = resource_type
    for token in path[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if token.isdigit():
            expression += f"[{token}]"
        elif token and token != "-" and token.replace("_", "").isalnum():
            expression += f".{token}"
        else:
            return []
    return [expression]
