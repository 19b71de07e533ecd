"""Who reads which AuditEvents (issue 13): the query on the audit store for one reader of the trail.

- the patient (own token): the events about their own record, or a record they legally represent;
- the médecin traitant: the events about the record of a patient whose generalPractitioner they are;
- any other professional: the events where they are the requesting agent;
- a system: its own client's events;
- the platform: all;
- anyone else (admins included): none.
A `patient` parameter narrows each of these to one record. The answer is a store filter of
top-level equalities (`pat`, `who`, `cid`), or None when the caller reads nothing.
"""

from __future__ import annotations

from typing import Any

from fhir_server.access import records
from fhir_server.audit.events import agent_key, client_key
from fhir_server.security.callers import INS_SYSTEMS, Caller
from fhir_server.storage.repository import Repository


async def _own_record(repository: Repository, caller: Caller) -> str | None:
    if caller.record_patient:
        return caller.record_patient
    if not caller.ins or not caller.ins.isalnum():
        return None
    found = await repository.ids("Patient", [("identifier", ",".join(f"{s}|{caller.ins}" for s in INS_SYSTEMS))],
                                 None, 2)
    return found[0] if len(found) == 1 else None


async def _patient_may_read(repository: Repository, caller: Caller, patient: str) -> bool:
    reader = repository.reader(None)
    record = await records.load(reader, patient)
    return record.exists and (records.is_own(record, caller) or await records.represents(reader, caller, record))


async def _treats(repository: Repository, caller: Caller, patient: str) -> bool:
    reader = repository.reader(None)
    record = await records.load(reader, patient)
    return bool(record.doctors & await records.professional_keys(reader, caller))


async def trail_filter(repository: Repository, caller: Caller, patient: str | None) -> dict[str, Any] | None:
    narrowed = {"pat": patient} if patient else {}
    if caller.kind == "platform":
        return narrowed
    if caller.kind == "patient":
        if patient is None:
            own = await _own_record(repository, caller)
            return {"pat": own} if own else None
        return narrowed if await _patient_may_read(repository, caller, patient) else None
    if caller.kind == "practitioner" and caller.idnatps:
        if patient is not None and await _treats(repository, caller, patient):
            return narrowed
        return {**narrowed, "who": agent_key(caller)}
    if caller.kind == "system":
        return {**narrowed, "cid": client_key(caller)}
    return None
