"""AuditEvents (FHIR R4, IHE BALP) from what an interaction was, who asked and what it touched.

Codes, profiles and systems come from `profiles/audit/audit-event.json`, which names its sources.
An interaction that touched several patients' records gives one AuditEvent per patient, each with
that patient's resources only (BALP's patient-specific pattern), so reading one's trail never shows
another patient's data; one that touched none gives one event without a patient.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from fhir_server.audit.trace import Trace
from fhir_server.config import PROJECT_ROOT
from fhir_server.security.callers import Caller
from fhir_server.timefmt import instant, now_instant

CODES_FILE = PROJECT_ROOT / "profiles" / "audit" / "audit-event.json"


@cache
def codes() -> dict[str, Any]:
    return orjson.loads(CODES_FILE.read_bytes())  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Interaction:
    """What was asked: a key of `interactions` in the codes file, and where it applies."""

    kind: str
    # The request line (method and URL, or the message type), kept as the event's description.
    what: str = ""
    # The query of a search or history, sent back base64-encoded in entity.query.
    query: bytes | None = None
    # A v2 message's event code (HL7 table 0003) and type, e.g. ("A01", "ADT^A01").
    message: tuple[str, str] | None = None
    # The client's network address.
    address: str | None = None


def outcome_code(status: int) -> str:
    """0 success, 4 minor failure (the caller's: 4xx, refusals and hidden 404s included), 8 the server's."""
    outcomes = codes()["outcomes"]
    if status < 400:
        return str(outcomes["success"])
    return str(outcomes["client"] if status < 500 else outcomes["server"])


def agent_key(caller: Caller | None) -> str | None:
    """The stored key a professional, patient or client finds their own events by."""
    if caller is None:
        return None
    if caller.kind == "practitioner" and caller.idnatps:
        return f"practitioner:{caller.idnatps}"
    if caller.kind == "patient" and caller.ins:
        return f"patient:{caller.ins}"
    return f"{caller.kind}:{caller.client_id or caller.id}"


def client_key(caller: Caller | None) -> str | None:
    """The client a system reads its events by: its client id (a system's subject is its client)."""
    if caller is None:
        return None
    return caller.client_id or (caller.id if caller.kind == "system" else None)


def _identifier(caller: Caller) -> dict[str, str]:
    systems = codes()["identifierSystems"]
    if caller.kind == "practitioner" and caller.idnatps:
        return {"system": systems["practitioner"], "value": caller.idnatps}
    if caller.kind == "patient" and caller.ins:
        return {"system": systems["patient"], "value": caller.ins}
    return {"system": systems["client"], "value": caller.client_id or caller.id}


def _agents(caller: Caller | None, address: str | None) -> list[dict[str, Any]]:
    table = codes()
    types, roles = table["agentTypes"], table["callerRoles"]
    network = {"network": {"address": address, "type": "2"}} if address else {}
    if caller is None:
        return [{"type": {"coding": [types["user"]]}, "role": [{"coding": [roles["anonymous"]]}],
                 "who": {"display": "anonymous"}, "requestor": True, **network}]
    person: dict[str, Any] = {
        "type": {"coding": [types["user"]]},
        "role": [{"coding": [roles[caller.kind]]}],
        "who": {"identifier": _identifier(caller), "display": caller.kind if caller.kind in ("platform", "admin") else None},
        "requestor": True, **network}
    if person["who"]["display"] is None:
        del person["who"]["display"]
    if caller.purpose_of_use:
        purposes = table["purposeOfUse"]
        coding = {"system": purposes["system"], "code": caller.purpose_of_use}
        if caller.purpose_of_use in purposes["codes"]:
            coding["display"] = purposes["codes"][caller.purpose_of_use]
        person["purposeOfUse"] = [{"coding": [coding]}]
    agents = [person]
    if caller.organization:
        agents.append({"type": {"coding": [roles["practitioner"]]},
                       "who": {"identifier": {"system": table["identifierSystems"]["organization"],
                                              "value": "1" + caller.organization}},
                       "requestor": False})
    if caller.client_id and caller.kind != "system":
        agents.append({"type": {"coding": [types["client"]]},
                       "who": {"identifier": {"system": table["identifierSystems"]["client"], "value": caller.client_id}},
                       "requestor": False})
    agents.append({"type": {"coding": [types["server"]]}, "who": {"display": table["source"]["observer"]},
                   "requestor": False})
    return agents


def _entity(kind: str, **fields: Any) -> dict[str, Any]:
    shape = codes()["entities"][kind]
    return {"type": shape["type"], "role": shape["role"], **fields}


def _type_and_subtype(interaction: Interaction, trace: Trace) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    table = codes()
    kind = trace.bundle if interaction.kind == "bundle" and trace.bundle else \
        ("batch" if interaction.kind == "bundle" else interaction.kind)
    row = table["interactions"][kind]
    if "subtype" in row:
        subtype = [row["subtype"]]
    elif interaction.message is not None:
        event, name = interaction.message
        subtype = [{"system": table["messageType"], "code": event, "display": name}]
    else:
        subtype = [{"system": table["restfulInteraction"], "code": kind}]
    return kind, table["types"][row["type"]], subtype


def build(interaction: Interaction, caller: Caller | None, status: int, trace: Trace, started: str,
          written_kept: bool) -> list[dict[str, Any]]:
    """The stored documents of the interaction's AuditEvents: `res` the AuditEvent, beside it the
    scalar keys the trail is read by (`ts`, `pat`, `who`, `cid`). `written_kept` False (a failed
    write, rolled back) leaves out what would have been written; its patients stay named."""
    table = codes()
    kind, event_type, subtype = _type_and_subtype(interaction, trace)
    row = table["interactions"][kind]
    recorded = now_instant()
    outcome = outcome_code(status)
    touched = dict(trace.returned)
    if written_kept and not trace.dry_run:
        for reference, patient in trace.written.items():
            touched.setdefault(reference, patient)
    patients: list[str | None] = list(trace.patients) or [None]
    common: list[dict[str, Any]] = []
    if interaction.query is not None:
        common.append(_entity("query", query=base64.b64encode(interaction.query).decode("ascii"),
                              description=interaction.what))
    if interaction.message is not None:
        common.append(_entity("message", description=interaction.what))
    shared = [_entity("resource", what={"reference": r}) for r, p in touched.items() if p is None]
    documents = []
    for patient in patients:
        entities: list[dict[str, Any]] = []
        if patient is not None:
            entities.append(_entity("patient", what={"reference": f"Patient/{patient}"}))
            entities += [_entity("resource", what={"reference": r}) for r, p in touched.items()
                         if p == patient and r != f"Patient/{patient}"]
        event: dict[str, Any] = {
            "resourceType": "AuditEvent",
            "id": uuid.uuid4().hex,
            "type": event_type,
            "subtype": subtype,
            "action": row["action"],
            "period": {"start": started, "end": recorded},
            "recorded": recorded,
            "outcome": outcome,
            "agent": _agents(caller, interaction.address),
            "source": {"observer": {"display": table["source"]["observer"]}, "type": [table["source"]["type"]]},
            "entity": [*entities, *shared, *common],
        }
        if status >= 400:
            event["outcomeDesc"] = f"{interaction.what}: HTTP {status}" if interaction.message is None \
                else f"{interaction.what}: refused"
        elif trace.dry_run:
            event["outcomeDesc"] = f"{interaction.what}: dry run, nothing stored"
        profile = row.get("profile")
        if patient is not None and profile:
            event["meta"] = {"profile": [table["profiles"][profile]]}
        if caller is not None and caller.purpose_of_use:
            event["purposeOfEvent"] = event["agent"][0]["purposeOfUse"]
        if not event["entity"]:
            del event["entity"]
        documents.append({"_id": event["id"], "ts": instant(recorded), "pat": patient,
                          "who": agent_key(caller), "cid": client_key(caller), "res": event})
    return documents
