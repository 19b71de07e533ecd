"""Which MLLP sender writes as whom: a facility (MSH-4) or an application at a facility
(MSH-3^MSH-4), registered to a client or listed in FHIR_MLLP_SENDERS."""

from __future__ import annotations

from typing import Any

from fhir_server.ingest.hl7v2.ack import read_header
from fhir_server.ingest.senders import MllpSenders
from fhir_server.security.clients import Client, ClientRegistry


def header(msh3: str, msh4: str) -> Any:
    return read_header(f"MSH|^~\\&|{msh3}|{msh4}|FHIRSRV|DMP|20240301||ADT^A28|1|P|2.5".encode())


def senders(allowed: frozenset[str], registered: dict[str, Client]) -> MllpSenders:
    registry = ClientRegistry(db=None)  # type: ignore[arg-type]
    registry.by_sender = registered
    return MllpSenders(allowed, registry)


def test_a_registered_facility_writes_with_its_clients_scopes() -> None:
    client = Client("c1", "CH", "123456789", "system/DocumentReference.c", {}, ("LAB^CHU",), "insurer")
    chosen = senders(frozenset(), {"LAB^CHU": client})
    caller = chosen.caller(header("LAB^1.2.3^ISO", "CHU^1.2.250.1^ISO"))
    assert caller is not None and (caller.client_id, caller.organization, caller.role) == ("c1", "123456789", "insurer")
    assert str(caller.scopes) == "system/DocumentReference.c"
    assert chosen.caller(header("RAD", "CHU")) is None, "another application of the facility is not registered"


def test_listed_senders_and_the_wildcard() -> None:
    listed = senders(frozenset({"CHU", "PAM^CLINIQUE"}), {})
    assert listed.caller(header("ANY", "CHU")) is not None
    assert listed.caller(header("PAM", "CLINIQUE")) is not None
    assert listed.caller(header("OTHER", "CLINIQUE")) is None
    assert listed.caller(header("PAM", "ELSEWHERE")) is None
    anyone = senders(frozenset({"*"}), {})
    assert anyone.caller(header("", "")) is not None
    assert senders(frozenset(), {}).caller(header("PAM", "CHU")) is None
