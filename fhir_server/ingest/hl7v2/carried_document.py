"""A CDA carried in the message (OBX ED): converted once by the CDA adapter, merged under the message.

The message's own fields win where they are stated; the CDA fills what the message leaves out
(type, category, author, custodian, period, practice setting...). A CDA whose patient is not
the message's (same identifier namespace, other value) is refused. The CDA's own Patient,
DocumentReference and Binary of the CDA are replaced by the message's, and every reference to
them is pointed at the message's resources.
"""

from __future__ import annotations

import copy
from typing import Any

from cda import CdaConversion, CdaError, convert_cda
from cda.document_merge import fill_document_reference
from fhir_server.ingest.hl7v2.engine import Engine, Produced, Scope
from fhir_server.ingest.hl7v2.errors import Hl7Error

_XML_TYPES = ("text/xml", "application/xml", "application/hl7-v3+xml")


def conversion(engine: Engine, binary_name: str) -> CdaConversion | None:
    memo = engine.state.setdefault("cda", {})
    if binary_name in memo:
        return memo[binary_name]
    document = engine.state.get("documents", {}).get(binary_name)
    result = None
    if document is not None and document[0] in _XML_TYPES:
        try:
            result = convert_cda(document[1])
        except CdaError as exc:
            engine.warnings.append(f"the carried XML document was stored as is, not read as CDA: {exc.message}")
        else:
            engine.warnings.extend(f"CDA: {warning}" for warning in result.warnings)
    memo[binary_name] = result
    return result


def enrich(engine: Engine, args: dict[str, Any], scope: Scope) -> None:
    converted = conversion(engine, args["binary"])
    if converted is None:
        return
    ours: Produced = args["produced"]
    entries = copy.deepcopy(converted.bundle["entry"])
    theirs = next(e for e in entries if e["fullUrl"] == converted.document_reference_fullurl)
    document = ours.entry["resource"]

    redirect: dict[str, str] = {theirs["fullUrl"]: ours.reference}
    dropped = {theirs["fullUrl"]}
    patient = scope.lookup("patient")
    encounter = (document.get("context", {}).get("encounter") or [{}])[0].get("reference")
    their_cda = theirs["resource"].get("content", [{}])[0].get("attachment", {}).get("url")
    for entry in entries:
        kind = entry["resource"]["resourceType"]
        if kind == "Patient" and patient is not None:
            _check_same_patient(patient.entry["resource"], entry["resource"])
            redirect[entry["fullUrl"]] = patient.reference
        elif kind == "Encounter" and encounter:
            redirect[entry["fullUrl"]] = encounter
        elif kind == "Binary" and their_cda == f"Binary/{entry['resource'].get('id')}":
            pass  # the same bytes as the message's Binary of the document
        else:
            same = _same_request(engine, entry)
            if same is None:
                continue
            redirect[entry["fullUrl"]] = same.reference
        dropped.add(entry["fullUrl"])

    fill_document_reference(document, _redirected(theirs["resource"], redirect))
    for entry in entries:
        if entry["fullUrl"] not in dropped:
            entry = _redirected(entry, redirect)
            engine.produced.append(Produced(f"cda:{entry['resource']['resourceType']}", entry["fullUrl"], entry))


def _check_same_patient(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    """A document filed under another patient is worse than no document: refuse it when, in an
    identifier namespace both the CDA's recordTarget and PID-3 use, their values differ (one INS
    per person, one IPP per facility)."""

    def by_system(patient: dict[str, Any]) -> dict[str, set[str]]:
        values: dict[str, set[str]] = {}
        for identifier in patient.get("identifier", []):
            values.setdefault(identifier.get("system", ""), set()).add(identifier.get("value", ""))
        return values

    mine, their = by_system(ours), by_system(theirs)
    shared = {system for system in mine.keys() & their.keys() if system and not mine[system] & their[system]}
    if shared:
        raise Hl7Error(
            "AE", "204",
            f"the carried CDA is about another patient: its identifiers in {', '.join(sorted(shared))} differ from PID-3",
            "PID^1^3",
        )


def _same_request(engine: Engine, entry: dict[str, Any]) -> Produced | None:
    """A resource the message already writes under the same conditional request (a prescriber)."""
    request = entry.get("request", {})
    if request.get("method") != "POST" or "ifNoneExist" not in request:
        return None
    for produced in engine.produced:
        mine = produced.entry["request"]
        if mine.get("url") == request["url"] and mine.get("ifNoneExist") == request["ifNoneExist"]:
            return produced
    return None


def _redirected(value: Any, redirect: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            key: redirect.get(item, item) if key == "reference" and isinstance(item, str) else _redirected(item, redirect)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redirected(item, redirect) for item in value]
    return value
