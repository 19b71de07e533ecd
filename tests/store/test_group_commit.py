"""Concurrent transactions on the embedded store are committed in groups (fhir_server/storage/group_commit.py),
and each keeps its own all-or-nothing: one refused inside its transaction is refused as if it had
run alone, nothing of it is stored, and the others of its group are stored whole."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from typing import Any

import httpx

from tests.server_process import ServerProcess

FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
# Transactions sent at once per round, every fourth of them refused inside its transaction.
AT_ONCE = 12
ROUNDS = 6


def _metric(text: str, name: str, labels: str = "") -> float:
    found = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def _transaction(identifier: str, stale_observation: str | None) -> dict[str, Any]:
    """A Patient and an Observation about them; with `stale_observation`, also an update of that
    Observation whose If-Match names a version it does not have (412 inside the transaction)."""
    patient_url = "urn:uuid:" + identifier
    entries: list[dict[str, Any]] = [
        {"fullUrl": patient_url,
         "resource": {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": identifier}],
                      "name": [{"family": "Groupe"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final",
                      "identifier": [{"system": SYSTEM, "value": identifier}],
                      "code": {"text": "poids"}, "subject": {"reference": patient_url}},
         "request": {"method": "POST", "url": "Observation"}},
    ]
    if stale_observation is not None:
        entries.append({"resource": {"resourceType": "Observation", "id": stale_observation, "status": "final",
                                     "code": {"text": "poids"}},
                        "request": {"method": "PUT", "url": f"Observation/{stale_observation}",
                                    "ifMatch": 'W/"7"'}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


async def _round(server: ServerProcess, unique: str, number: int, stale: str) -> list[tuple[str, bool, httpx.Response]]:
    async with httpx.AsyncClient(base_url=server.base_url, headers={**server.headers, **FHIR_JSON},
                                 timeout=120) as client:
        plans = [(f"{unique}-{number}-{i}", i % 4 == 3) for i in range(AT_ONCE)]
        answers = await asyncio.gather(*(client.post("", json=_transaction(identifier, stale if refused else None))
                                         for identifier, refused in plans))
    return [(identifier, refused, answer) for (identifier, refused), answer in zip(plans, answers, strict=True)]


def test_concurrent_transactions_share_commits_and_keep_their_own_outcome(
        server: ServerProcess, fhir: httpx.Client, unique: str) -> None:
    stale = fhir.post("/Observation", json={"resourceType": "Observation", "status": "final",
                                            "code": {"text": "poids"}})
    assert stale.status_code == 201, stale.text
    stale_id = stale.json()["id"]
    scrape = {"Authorization": f"Bearer {server.token}"}
    before = httpx.get(f"{server.root_url}/metrics", headers=scrape, timeout=30).text
    outcomes = []
    for number in range(ROUNDS):
        outcomes += asyncio.run(_round(server, unique, number, stale_id))
        after = httpx.get(f"{server.root_url}/metrics", headers=scrape, timeout=30).text
        grouped = _metric(after, "fhir_store_group_commit_size_count") - _metric(before, "fhir_store_group_commit_size_count")
        reruns = _metric(after, "fhir_store_group_commit_reruns_total", '{cause="member failed"}') \
            - _metric(before, "fhir_store_group_commit_reruns_total", '{cause="member failed"}')
        if grouped and reruns:
            break
    # Transactions waited for each other and shared a commit, and a refused one aborted a group.
    assert grouped > 0 and reruns > 0, "no group commit with a refused member was seen"
    for identifier, refused, answer in outcomes:
        patients = fhir.get("/Patient", params={"identifier": f"{SYSTEM}|{identifier}"}).json().get("entry", [])
        observations = fhir.get("/Observation", params={"identifier": f"{SYSTEM}|{identifier}"}).json().get("entry", [])
        if refused:
            # Refused as a lone run would be, and nothing of it stored.
            assert answer.status_code == 412, answer.text
            assert "If-Match" in answer.text
            assert patients == [] and observations == [], identifier
        else:
            assert answer.status_code == 200, answer.text
            assert [e["response"]["status"][:3] for e in answer.json()["entry"]] == ["201", "201"]
            assert len(patients) == 1 and len(observations) == 1, identifier
            patient = f"Patient/{patients[0]['resource']['id']}"
            assert observations[0]["resource"]["subject"]["reference"] == patient
            # Its audit event names what this transaction wrote, whatever ran in its group.
            events = fhir.get("/AuditEvent", params={"patient": patient}).json().get("entry", [])
            written = {e["what"]["reference"] for event in events for e in event["resource"].get("entity", [])
                       if "reference" in e.get("what", {})}
            assert {patient, f"Observation/{observations[0]['resource']['id']}"} <= written, (identifier, written)
            # ... and nothing another transaction of the group wrote.
            assert {r for r in written if r.startswith("Patient/")} == {patient}, (identifier, written)
    # The Observation the refused ones tried to update is as it was.
    assert fhir.get(f"/Observation/{stale_id}").json()["meta"]["versionId"] == "1"


def test_bytes_land_with_their_binary_or_not_at_all(server: ServerProcess, fhir: httpx.Client, store: Any,
                                                    unique: str) -> None:
    """A Binary's bytes are written in its transaction (fhir_server/storage/binaries.py): the same
    bytes sent by concurrent transactions are one copy and every Binary reads them back, and bytes
    whose transaction is refused are not stored."""
    shared = f"{unique} shared bytes".encode() * 40
    refused = f"{unique} refused bytes".encode() * 40
    stale = fhir.post("/Observation", json={"resourceType": "Observation", "status": "final", "code": {"text": "x"}})
    assert stale.status_code == 201, stale.text

    def bundle(data: bytes, stale_id: str | None) -> dict[str, Any]:
        entries: list[dict[str, Any]] = [{"resource": {"resourceType": "Binary", "contentType": "text/plain",
                                                       "data": base64.b64encode(data).decode()},
                                          "request": {"method": "POST", "url": "Binary"}}]
        if stale_id is not None:
            entries.append({"resource": {"resourceType": "Observation", "id": stale_id, "status": "final",
                                         "code": {"text": "x"}},
                            "request": {"method": "PUT", "url": f"Observation/{stale_id}", "ifMatch": 'W/"9"'}})
        return {"resourceType": "Bundle", "type": "transaction", "entry": entries}

    async def send() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.base_url, headers={**server.headers, **FHIR_JSON},
                                     timeout=120) as client:
            return await asyncio.gather(*(client.post("", json=bundle(refused if i == 3 else shared,
                                                                      stale.json()["id"] if i == 3 else None))
                                          for i in range(AT_ONCE)))

    answers = asyncio.run(send())
    assert answers[3].status_code == 412, answers[3].text
    for answer in answers[:3] + answers[4:]:
        assert answer.status_code == 200, answer.text
        binary = answer.json()["entry"][0]["response"]["location"].split("/_history")[0]
        read = fhir.get(f"/{binary}", headers={"Accept": "text/plain"})
        assert read.status_code == 200 and read.content == shared, binary
    assert store["blobs"].count_documents({"_id": hashlib.sha256(shared).hexdigest()}) == 1
    assert store["blobs"].count_documents({"_id": hashlib.sha256(refused).hexdigest()}) == 0


def test_conditional_creates_in_one_group_make_one_resource(server: ServerProcess, fhir: httpx.Client,
                                                           unique: str) -> None:
    """The second of two conditional creates in one group finds the first's resource through the
    identifier lookup entry the first has not sent yet (fhir_server.storage.pending.Overlay)."""
    patient = {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": unique}],
               "name": [{"family": "Conditionnel"}]}

    async def send() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120, headers={
                **server.headers, **FHIR_JSON, "If-None-Exist": f"identifier={SYSTEM}|{unique}"}) as client:
            return await asyncio.gather(*(client.post("/Patient", json=patient) for _ in range(AT_ONCE)))

    answers = asyncio.run(send())
    assert sorted(a.status_code for a in answers) == [200] * (AT_ONCE - 1) + [201], [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    found = fhir.get("/Patient", params={"identifier": f"{SYSTEM}|{unique}"}).json().get("entry", [])
    assert [e["resource"]["id"] for e in found] == [answers[0].json()["id"]]

