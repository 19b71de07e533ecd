"""A letter resent while its first copy is being written lands once, also when the copies share a
group commit (fhir_server/storage/group_commit.py)."""

from __future__ import annotations

import asyncio

import httpx

from tests.hl7v2.conftest import personalised_cda
from tests.server_process import ServerProcess

CDA = {"Content-Type": "application/hl7-cda+xml"}
AT_ONCE = 12


def test_one_letter_sent_many_times_at_once_lands_once(server: ServerProcess, unique: str) -> None:
    """A hospital resending a CDA letter while the first copy is being written (a retry after a
    timeout): the copies that share a group commit find the first one's identifiers through its
    lookup entries not yet sent (fhir_server.storage.pending.Overlay), so the record holds it once."""
    letter = personalised_cda("cda_imaging_report.xml", unique[:6])

    async def send() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.root_url, headers=server.headers, timeout=120) as client:
            return await asyncio.gather(*(client.post("/ingest/cda", content=letter, headers=CDA)
                                          for _ in range(AT_ONCE)))

    answers = asyncio.run(send())
    assert sorted(a.status_code for a in answers) == [200] * (AT_ONCE - 1) + [201], [a.text[:300] for a in answers]
    assert len({a.headers["Location"] for a in answers}) == 1
