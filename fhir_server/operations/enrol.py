"""`POST [base]/$enrol`: one batch of an insurer's roster, enrolled by the server
(fhir_server.record.enrolment), for `fhir-server enrol --base-url` and any insurer system.

Why not `$import` or a transaction: both write what the client sends as it is. Enrolment must
find each person's Patient by INS whoever created it, keep a record's status (never re-pend an
opposed record, which the client cannot even read), and queue the notice in the same transaction
as the Patient version recording its date, in the server's own mail queue: the server decides
each of these, so the operation is the server's.

The body is FHIR NDJSON (`application/fhir+ndjson`): Patient lines, each followed by the
RelatedPerson lines of its legal representatives (README, "Enrolment"). The caller is an insurer
(a system client with role `insurer`), an operator (admin) or the platform. The answer is a Parameters resource with
one `person` per Patient line or rejected line: its `line` in the body, its `result` (created,
updated, unchanged, kept, rejected), the `reason` of a rejection and the `notice` queued (email,
postal). Postal notices are appended to the CSV of the server's data dir.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from fhir_server.access.insurer import is_insurer
from fhir_server.config import Settings
from fhir_server.errors import FhirError
from fhir_server.record import notice as notices
from fhir_server.record.enrolment import ID_KEY, Enrolment, Outcome
from fhir_server.record.roster import Person, Rejected, read_stream
from fhir_server.security.callers import Caller
from fhir_server.security.server_keys import server_secret
from fhir_server.storage.repository import Repository

# Persons of one request at most: a batch is one transaction, and one answer.
MAX_PERSONS = 5000


def check_caller(caller: Caller) -> None:
    if not is_insurer(caller) and caller.kind not in ("platform", "admin"):
        raise FhirError(403, "forbidden", "$enrol is for the health insurer's system (a client with role insurer)")


class EnrolOperation:
    """The server's enrolment, made on first use (its collections and secret)."""

    def __init__(self, repository: Repository, settings: Settings) -> None:
        self.repository = repository
        self.settings = settings
        self._enrolment: Enrolment | None = None
        self._ready = asyncio.Lock()

    async def enrolment(self) -> Enrolment:
        async with self._ready:
            if self._enrolment is None:
                database = self.repository.database
                await notices.prepare_store(database)
                key_dir = self.settings.data_dir if database.capabilities.embedded else None
                secret = await server_secret(ID_KEY, data_dir=key_dir, db=database.db)
                self._enrolment = Enrolment(self.repository, secret, self.settings.mail_from)
            return self._enrolment

    async def run(self, body: bytes) -> dict[str, Any]:
        items = list(read_stream(io.BytesIO(body), "ndjson"))
        persons = [i for i in items if isinstance(i, Person)]
        if not items:
            raise FhirError(400, "structure", "The body holds no roster line")
        if len(persons) > MAX_PERSONS:
            raise FhirError(413, "too-costly", f"At most {MAX_PERSONS} persons per request; send the roster in batches")
        enrolment = await self.enrolment()
        outcomes: list[Outcome] = []
        batch: list[Person] = []
        seen: set[tuple[str, str]] = set()
        for person in persons:
            if person.ins in seen:
                # The same person twice: the later line is a new version of the first.
                outcomes += await enrolment.enrol(batch)
                batch, seen = [], set()
            batch.append(person)
            seen.add(person.ins)
        outcomes += await enrolment.enrol(batch) if batch else []
        outcomes += [Outcome(i.line, "rejected", i.reason) for i in items if isinstance(i, Rejected)]
        await notices.export(self.repository.database, self.settings.data_dir / notices.POSTAL_FILE)
        return {"resourceType": "Parameters", "parameter": [_parameter(o) for o in sorted(outcomes, key=lambda o: o.line)]}


def _parameter(outcome: Outcome) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"name": "line", "valueInteger": outcome.line},
                                   {"name": "result", "valueCode": outcome.result}]
    if outcome.reason:
        parts.append({"name": "reason", "valueString": outcome.reason})
    if outcome.notice:
        parts.append({"name": "notice", "valueCode": outcome.notice})
    if outcome.patient_id:
        parts.append({"name": "patient", "valueReference": {"reference": f"Patient/{outcome.patient_id}"}})
    return {"name": "person", "part": parts}
