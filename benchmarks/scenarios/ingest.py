"""Document intake paths: ITI-65 (MHD Provide Document Bundle), ITI-68 (retrieve), CDA over HTTP, MDM^T02
over MLLP. A path the server does not offer yet (404, refused connection) is reported as not available."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import datetime, timezone
from collections.abc import Callable
from typing import Any

import orjson

from benchmarks import datagen, payloads
from benchmarks.measure import NotAvailable, Operation
from benchmarks.scenarios.base import FRONT_NONE, JSON_HEADERS, Bench, Scenario, expect, probe

PDF_BYTES = 100_000
CDA_BYTES = 75_000
MLLP_CDA_BYTES = 300_000
serials = itertools.count()


def _serial() -> str:
    return f"{uuid.uuid4().hex[:12]}-{next(serials)}"


def provide_bundle(bench: Bench, pdf: bytes) -> dict[str, Any]:
    """An ITI-65 transaction: SubmissionSet List, DocumentReference, Binary, linked by urn:uuid."""
    pid, number, _ = bench.pick_patient()
    patient = f"Patient/{pid}"
    serial = uuid.uuid4().int % 10**15
    binary_url, document_url, list_url = (f"urn:uuid:{uuid.uuid4()}" for _ in range(3))
    document = datagen.document_reference(patient, binary_url, number, 0, len(pdf), "application/pdf")
    document["masterIdentifier"]["value"] = f"urn:oid:{payloads.DOCUMENT_ROOT}.{serial}"
    submission_set = {
        "resourceType": "List",
        "identifier": [{"use": "official", "system": "urn:ietf:rfc:3986", "value": f"urn:oid:{payloads.DOCUMENT_ROOT}.1.{serial}"}],
        "status": "current",
        "mode": "working",
        "code": {"coding": [datagen.codes()["submission_set_code"]]},
        "subject": {"reference": patient},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "entry": [{"item": {"reference": document_url}}],
    }
    entries = [(list_url, submission_set), (document_url, document),
               (binary_url, datagen.binary(pdf, "application/pdf"))]
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"fullUrl": url, "resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}
                      for url, resource in entries]}


def _binary_ids(response: dict[str, Any]) -> list[str]:
    return [e["response"]["location"].split("/_history/")[0].rsplit("/", 1)[-1]
            for e in response.get("entry", []) if "Binary/" in e["response"].get("location", "")]


async def iti65(bench: Bench) -> Operation:
    pdf = payloads.pdf(PDF_BYTES, seed=65)

    async def operation(_: int) -> None:
        response = probe(await bench.client.post("", content=orjson.dumps(provide_bundle(bench, pdf)),
                                                 headers=JSON_HEADERS), 200)
        bench.cache.setdefault("pdf binaries", []).extend(_binary_ids(response.json()))

    return operation


async def iti68(bench: Bench) -> Operation:
    stored: list[str] = bench.cache.get("pdf binaries") or []
    if not stored:
        pdf = payloads.pdf(PDF_BYTES, seed=68)
        for _ in range(8):
            response = probe(await bench.client.post("", content=orjson.dumps(provide_bundle(bench, pdf)),
                                                     headers=JSON_HEADERS), 200)
            stored.extend(_binary_ids(response.json()))
    if not stored:
        raise NotAvailable("ITI-65 stored no Binary to retrieve")

    async def operation(_: int) -> None:
        response = expect(await bench.client.get(f"/Binary/{bench.rng.choice(stored)}",
                                                 headers={"Accept": "application/pdf"}), 200)
        if len(response.content) < PDF_BYTES // 2:
            raise RuntimeError(f"retrieved {len(response.content)} bytes, expected a 100 KB PDF")

    return operation


async def ingest_cda(bench: Bench) -> Operation:
    # The letter is built once; each request only swaps its document id (a bytes replace, not XML work).
    marker = _serial()
    template = payloads.discharge_letter(marker, CDA_BYTES)

    async def operation(_: int) -> None:
        body = template.replace(marker.encode(), _serial().encode())
        probe(await bench.client.post(f"{bench.root_url}/ingest/cda", content=body,
                                      headers={"Content-Type": "application/hl7-cda+xml", "Accept": "application/fhir+json"}),
              200, 201)

    return operation


async def mllp_mdm_t02(bench: Bench) -> Operation:
    try:
        from fhir_server.ingest.mllp import mllp_send
    except ImportError as exc:
        raise NotAvailable("fhir_server.ingest.mllp.mllp_send is not present") from exc
    marker = _serial()
    cda = payloads.discharge_letter(marker, MLLP_CDA_BYTES)

    async def operation(i: int) -> None:
        serial = _serial()
        message = payloads.mdm_t02(serial, cda.replace(marker.encode(), serial.encode()))
        try:
            ack = await mllp_send("127.0.0.1", bench.mllp_port, message, timeout=60)
        except (ConnectionRefusedError, asyncio.IncompleteReadError, ConnectionError) as exc:
            if i < 0:  # the warm-up call: nothing listens on the MLLP port
                raise NotAvailable(f"no MLLP listener on port {bench.mllp_port}: {exc.__class__.__name__}") from exc
            raise
        if b"MSA|AA" not in ack and b"MSA|CA" not in ack:
            raise RuntimeError(f"not accepted: {ack[:300]!r}")

    return operation


async def _parsed_in_process(parse: Callable[[bytes], Any]) -> Operation:
    marker = _serial()
    message = payloads.mdm_t02(marker, payloads.discharge_letter(marker, MLLP_CDA_BYTES))

    async def operation(i: int) -> None:
        parse(message)  # on this process's loop: one at a time, whatever the concurrency

    return operation


async def hl7apy_parse(bench: Bench) -> Operation:
    """What hl7apy alone takes to parse the MLLP path's message (issue 6 asks for it beside MLLP)."""
    from hl7apy.parser import parse_message

    return await _parsed_in_process(
        lambda message: parse_message(message.decode("utf-8").replace("\n", "\r"), find_groups=False))


async def cda_conversion(bench: Bench) -> Operation:
    """The CDA adapter alone on the /ingest/cda path's 75 KB letter: documents converted per second."""
    from cda.convert import convert_cda

    marker = _serial()
    letter = payloads.discharge_letter(marker, CDA_BYTES)

    async def operation(i: int) -> None:
        convert_cda(letter)

    return operation


async def server_conversion(bench: Bench) -> Operation:
    """The server's own reading and mapping of the same message, storage left out."""
    from fhir_server.ingest.hl7v2.convert import convert_message

    return await _parsed_in_process(convert_message)


SCENARIOS = [
    Scenario("ITI-65 100 KB PDF", "ingest", iti65),
    Scenario("ITI-68 retrieve", "ingest", iti68),
    Scenario("/ingest/cda 75 KB", "ingest", ingest_cda),
    Scenario("MLLP MDM^T02 300 KB", "ingest", mllp_mdm_t02),
    Scenario("convert CDA 75 KB, no storage", "limit", cda_conversion, front=FRONT_NONE),
    Scenario("hl7apy parse MDM^T02 300 KB", "limit", hl7apy_parse, front=FRONT_NONE),
    Scenario("convert MDM^T02 300 KB, no storage", "limit", server_conversion, front=FRONT_NONE),
]
