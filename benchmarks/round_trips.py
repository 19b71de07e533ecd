"""Store round trips per ingested document (issue 18: at most 6): a server of its own with the
command recorder on (FHIR_COMMAND_LOG, fhir_server.storage.command_log), one patient, then documents
sent one at a time on each ingest path (`/ingest/cda` 75 KB, MDM^T02 300 KB over MLLP, ITI-65 with a
100 KB PDF). Every command the store receives while a document is handled is one round trip: those
the request sends (its label in the log) and the audit trail's group commits of the same moment
(each a commit the document waits for). The outbox dispatcher's later work, which the document does
not wait for, is counted apart.

Counts are exact whatever the load of the machine: this is the figure to compare across commits.
Run as `python -m benchmarks.round_trips [--documents N]`; `benchmarks.run` calls `measure()`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson

from benchmarks import datagen, payloads
from benchmarks.scenarios.ingest import CDA_BYTES, MLLP_CDA_BYTES, PDF_BYTES
from benchmarks.server import Server
from fhir_server.audit.writer import GROUP_COMMIT
from fhir_server.storage.group_commit import GROUP_COMMIT as STORE_GROUP_COMMIT

# Connection upkeep, not work done for a document.
UPKEEP = frozenset({"hello", "isMaster", "ismaster", "ping", "endSessions", "buildInfo", "saslStart", "saslContinue"})
TARGET = 6
# Documents sent at once for the second count of each path: what the throughput runs keep in flight.
IN_FLIGHT = 8
JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
# The patient of the payloads' MDM^T02 and discharge letter (its INS), created first.
PATIENT_NUMBER = 0


def _lines(path: Path, start: int) -> tuple[list[dict[str, Any]], int]:
    data = path.read_bytes() if path.exists() else b""
    return [json.loads(line) for line in data[start:].splitlines() if line.strip()], len(data)


def _iti65(patient: str, pdf: bytes) -> dict[str, Any]:
    serial = uuid.uuid4().int % 10**15
    binary_url, document_url, list_url = (f"urn:uuid:{uuid.uuid4()}" for _ in range(3))
    document = datagen.document_reference(patient, binary_url, PATIENT_NUMBER, 0, len(pdf), "application/pdf")
    document["masterIdentifier"]["value"] = f"urn:oid:{payloads.DOCUMENT_ROOT}.{serial}"
    submission_set = {
        "resourceType": "List", "status": "current", "mode": "working",
        "identifier": [{"use": "official", "system": "urn:ietf:rfc:3986",
                        "value": f"urn:oid:{payloads.DOCUMENT_ROOT}.1.{serial}"}],
        "code": {"coding": [datagen.codes()["submission_set_code"]]},
        "subject": {"reference": patient}, "date": "2026-12-05T10:00:00+00:00",
        "entry": [{"item": {"reference": document_url}}],
    }
    entries = [(list_url, submission_set), (document_url, document), (binary_url, datagen.binary(pdf, "application/pdf"))]
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"fullUrl": u, "resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
                      for u, r in entries]}


async def _count(server: Server, log: Path, label: str, documents: int, send: Any, in_flight: int = 1) -> dict[str, Any]:
    """Send `documents`, `in_flight` at a time; the commands of each, by request label and in total.
    With more than one in flight, the transactions that wait for the store's writer share a commit
    (fhir_server.storage.group_commit): its deferred writes and commit are counted for the group."""
    await send()  # the first of a kind warms caches (facilities, definitions): not counted
    await asyncio.sleep(0.5)
    _, offset = _lines(log, 0)
    for start in range(0, documents, in_flight):
        await asyncio.gather(*(send() for _ in range(min(in_flight, documents - start))))
    await asyncio.sleep(0.5)  # the audit group commit of the last one
    lines, _ = _lines(log, offset)
    lines = [line for line in lines if line["command"] not in UPKEEP]
    own = [line for line in lines if line["request"] not in (None, GROUP_COMMIT, STORE_GROUP_COMMIT)]
    group = [line for line in lines if line["request"] == STORE_GROUP_COMMIT]
    audit = [line for line in lines if line["request"] == GROUP_COMMIT]
    background = [line for line in lines if line["request"] is None]
    commands = Counter(f"{line['command']} {line['collection'] or ''}".strip() for line in own + group)
    return {
        "path": label, "documents": documents, "in_flight": in_flight,
        "per_document": round((len(own) + len(group) + len(audit)) / documents, 2),
        "request": round(len(own) / documents, 2),
        "store_group_commit": round(len(group) / documents, 2),
        "audit_group_commit": round(len(audit) / documents, 2),
        "background": round(len(background) / documents, 2),
        "commands": {name: round(n / documents, 2) for name, n in commands.most_common()},
        "background_commands": {name: round(n / documents, 2) for name, n in Counter(
            f"{line['command']} {line['collection'] or ''}".strip() for line in background).most_common()},
    }


async def _measure(server: Server, log: Path, documents: int, in_flight: int) -> list[dict[str, Any]]:
    from fhir_server.ingest.mllp import mllp_send

    async with httpx.AsyncClient(base_url=server.base_url, headers=server.headers, timeout=120) as client:
        patient = datagen.patient(PATIENT_NUMBER)
        response = await client.post("/Patient", content=orjson.dumps(patient), headers=JSON)
        response.raise_for_status()
        patient_ref = f"Patient/{response.json()['id']}"
        pdf = payloads.pdf(PDF_BYTES, seed=65)
        marker = uuid.uuid4().hex
        letter = payloads.discharge_letter(marker, CDA_BYTES)
        big = payloads.discharge_letter(marker, MLLP_CDA_BYTES)

        async def cda() -> None:
            body = letter.replace(marker.encode(), uuid.uuid4().hex.encode())
            answer = await client.post(f"{server.root_url}/ingest/cda", content=body,
                                       headers={"Content-Type": "application/hl7-cda+xml", "Accept": "application/fhir+json"})
            if answer.status_code not in (200, 201):
                raise RuntimeError(f"/ingest/cda -> {answer.status_code}: {answer.text[:300]}")

        async def mdm() -> None:
            serial = uuid.uuid4().hex
            ack = await mllp_send("127.0.0.1", server.mllp_port,
                                  payloads.mdm_t02(serial, big.replace(marker.encode(), serial.encode())), timeout=60)
            if b"MSA|AA" not in ack and b"MSA|CA" not in ack:
                raise RuntimeError(f"MDM^T02 not accepted: {ack[:300]!r}")

        async def iti65() -> None:
            answer = await client.post("", content=orjson.dumps(_iti65(patient_ref, pdf)), headers=JSON)
            if answer.status_code != 200:
                raise RuntimeError(f"ITI-65 -> {answer.status_code}: {answer.text[:300]}")

        rows = []
        for label, send in (("/ingest/cda 75 KB", cda), ("MLLP MDM^T02 300 KB", mdm), ("ITI-65 100 KB PDF", iti65)):
            rows.append(await _count(server, log, label, documents, send))
            if in_flight > 1:
                rows.append(await _count(server, log, label, documents * in_flight, send, in_flight))
        return rows


def measure(documents: int = 5, in_flight: int = IN_FLIGHT) -> list[dict[str, Any]]:
    scratch = Path(tempfile.mkdtemp(prefix="fhir-round-trips-"))
    log = scratch / "commands.jsonl"
    server = Server(scratch / "data", env={"FHIR_COMMAND_LOG": str(log)}).start()
    try:
        return asyncio.run(_measure(server, log, documents, in_flight))
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.round_trips", description=__doc__)
    parser.add_argument("--documents", type=int, default=5)
    parser.add_argument("--in-flight", type=int, default=IN_FLIGHT,
                        help="also send documents this many at a time (1: one at a time only)")
    parser.add_argument("--verbose", action="store_true", help="list the commands of each path")
    args = parser.parse_args(argv)
    for row in measure(args.documents, args.in_flight):
        print(f"{row['path']:<24} {row['in_flight']:>2} in flight: {row['per_document']:>6} round trips per document "
              f"(request {row['request']}, store group commit {row['store_group_commit']}, "
              f"audit {row['audit_group_commit']}; background afterwards {row['background']}; target <= {TARGET})")
        if args.verbose:
            for name, n in row["commands"].items():
                print(f"    {n:>6}  {name}")
            for name, n in row["background_commands"].items():
                print(f"    {n:>6}  {name} (background)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
