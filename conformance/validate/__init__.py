"""`fhir-conformance validate FILE...`: a tester's own ITI-65 bundles, CDA documents and HL7 v2
messages checked as this server's intake checks them, with the server's own modules (they ship
in the same wheel), storing nothing. Offline by default; with a base URL (and token) the server's
`Bundle/$validate` is asked whether an ITI-65 bundle's subjects are patients it knows (a CDA
document or an HL7 v2 message can be tried on a server with its intake's `?_dryRun=true`). Each
check is a `Result` of the tool's report model."""

from __future__ import annotations

from pathlib import Path

from conformance.model import Requirement, Result, Verdict
from conformance.validate import cda, hl7v2, iti65
from conformance.validate.online import Server

# Bytes a file may start with before its content: a UTF-8 BOM, blank space, MLLP's start block.
_LEADING = b"\xef\xbb\xbf \t\r\n\x0b"
FILE_KIND = Requirement(
    "fhir-conformance", "validate",
    "[the tool's own rule] A file to validate is an ITI-65 Provide Document Bundle in FHIR JSON, a CDA R2 "
    "document (XML) or an HL7 v2 message (ER7, starting with MSH).")


def validate_files(paths: list[Path], base_url: str | None, token: str | None) -> list[Result]:
    server = Server(base_url, token) if base_url else None
    results: list[Result] = []
    for path in paths:
        results += validate_file(path, server)
    return results


def validate_file(path: Path, server: Server | None) -> list[Result]:
    try:
        data = path.read_bytes()
    except OSError as error:
        return [Result("VALIDATE-file", f"{path.name}: read", ("validate",), FILE_KIND, Verdict.ERROR,
                       f"cannot read {path}: {error.strerror or error}")]
    head = data.lstrip(_LEADING)
    if head.startswith(b"MSH"):
        return hl7v2.validate(path.name, data)
    if head.startswith(b"{"):
        return iti65.validate(path.name, data, server)
    if head.startswith(b"<"):
        return cda.validate(path.name, data)
    return [Result("VALIDATE-file", f"{path.name}: kind of file", ("validate",), FILE_KIND, Verdict.FAILED,
                   "neither FHIR JSON ('{'), XML ('<') nor an HL7 v2 message ('MSH'): nothing to validate")]
