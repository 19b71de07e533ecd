"""The REST core: read, vread, create, update with If-Match, transaction of 10 entries."""

from __future__ import annotations

import uuid

import orjson

from benchmarks import datagen
from benchmarks.measure import Operation
from benchmarks.scenarios.base import JSON_HEADERS, WRK_PATHS, Bench, Scenario, expect


async def read(bench: Bench) -> Operation:
    async def operation(_: int) -> None:
        expect(await bench.client.get(f"/DocumentReference/{bench.pick('DocumentReference')}",
                                      headers=JSON_HEADERS), 200)

    return operation


async def vread(bench: Bench) -> Operation:
    async def operation(_: int) -> None:
        expect(await bench.client.get(f"/DocumentReference/{bench.pick('DocumentReference')}/_history/1",
                                      headers=JSON_HEADERS), 200)

    return operation


async def read_paths(bench: Bench) -> tuple[str, list[str]]:
    return bench.root_url, [f"/fhir/DocumentReference/{bench.pick('DocumentReference')}" for _ in range(WRK_PATHS)]


async def vread_paths(bench: Bench) -> tuple[str, list[str]]:
    return bench.root_url, [f"/fhir/DocumentReference/{bench.pick('DocumentReference')}/_history/1"
                            for _ in range(WRK_PATHS)]


def new_document(bench: Bench, i: int) -> dict:
    pid, number, _ = bench.pick_patient()
    return datagen.document_reference(f"Patient/{pid}", f"Binary/{bench.pick('Binary')}", number, 1000 + i, 512)


async def create(bench: Bench) -> Operation:
    async def operation(i: int) -> None:
        expect(await bench.client.post("/DocumentReference", content=orjson.dumps(new_document(bench, i)),
                                       headers=JSON_HEADERS), 201)

    return operation


async def update(bench: Bench) -> Operation:
    """Each call updates one of a pool of documents, with the If-Match of the version it last wrote.

    The pool is larger than the number of workers, and a document is taken out of it while it is
    being updated, so versions never conflict."""
    pool: list[tuple[str, str]] = []
    for i in range(64):
        created = expect(await bench.client.post("/Communication", headers=JSON_HEADERS,
                                                 content=orjson.dumps(datagen.communication(f"Patient/{bench.pick('Patient')}", i))), 201)
        pool.append((created.json()["id"], created.headers["etag"]))

    async def operation(i: int) -> None:
        rid, etag = pool.pop(0)
        body = datagen.communication(f"Patient/{bench.pick('Patient')}", i)
        body["id"] = rid
        body["payload"] = [{"contentString": f"Update {i}"}]
        response = await bench.client.put(f"/Communication/{rid}", content=orjson.dumps(body),
                                          headers={**JSON_HEADERS, "If-Match": etag})
        pool.append((rid, response.headers.get("etag", etag)))
        expect(response, 200)

    return operation


async def transaction(bench: Bench) -> Operation:
    async def operation(i: int) -> None:
        patient = f"Patient/{bench.pick('Patient')}"
        entries = []
        for n in range(10):
            resource = datagen.appointment(patient, i * 10 + n) if n % 2 else datagen.communication(patient, i * 10 + n)
            entries.append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": resource,
                            "request": {"method": "POST", "url": resource["resourceType"]}})
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        expect(await bench.client.post("", content=orjson.dumps(bundle), headers=JSON_HEADERS), 200)

    return operation


SCENARIOS = [
    Scenario("read", "rest", read, {"store": "store read", "bare": "bare read"}, wrk=read_paths),
    Scenario("vread", "rest", vread, {"store": "store vread", "bare": "bare read"}, wrk=vread_paths),
    Scenario("create", "rest", create, {"store": "store insert"}),
    Scenario("update If-Match", "rest", update, {"store": "store insert"}),
    Scenario("transaction 10", "rest", transaction),
]
