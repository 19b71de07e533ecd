"""The limits each path is compared to: the same operation sent straight to the store with PyMongo,
and the bare endpoint (same ASGI stack, same stored document, no FHIR logic)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from benchmarks.measure import Operation
from benchmarks.scenarios.base import FRONT_BARE, FRONT_NONE, JSON_HEADERS, WRK_PATHS, Bench, Scenario, expect
from benchmarks.scenarios.search import patient_and_type, type_key


async def store_read(bench: Bench) -> Operation:
    collection = bench.db["DocumentReference"]

    async def operation(_: int) -> None:
        if await collection.find_one({"_id": bench.pick("DocumentReference")}, {"ix": 0, "sk": 0}) is None:
            raise RuntimeError("stored document not found")

    return operation


async def store_vread(bench: Bench) -> Operation:
    history = bench.db["history"]

    async def operation(_: int) -> None:
        if await history.find_one({"rid": f"DocumentReference/{bench.pick('DocumentReference')}", "vid": 1}) is None:
            raise RuntimeError("stored version not found")

    return operation


async def store_insert(bench: Bench) -> Operation:
    """What the store does for a create: the current document and its history entry written in one
    transaction, into scratch collections indexed like the server's."""
    template: dict[str, Any] | None = await bench.db["DocumentReference"].find_one({})
    if template is None:
        raise RuntimeError("no stored DocumentReference to copy")
    current, history = bench.scratch, bench.db[f"{bench.scratch.name}_history"]
    for n, spec in enumerate((await bench.db["DocumentReference"].index_information()).values()):
        if spec["key"] != [("_id", 1)]:
            await current.create_index(spec["key"], name=f"i_{bench.scratch.name}_{n}")
    await history.create_index([("rid", 1)], name=f"i_{bench.scratch.name}_rid")
    # One writer at a time with the server too (its gate): the embedded store's transactions fail
    # when they interleave, and the server writes in the background (outbox, subscriptions).

    async def operation(i: int) -> None:
        rid = f"bench-{time.time_ns()}-{i}"
        doc = {**template, "_id": rid, "sid": rid}
        entry = {"_id": f"{doc['ts']}|DocumentReference/{rid}/1", "rt": "DocumentReference",
                 "rid": f"DocumentReference/{rid}", "vid": 1, "ts": doc["ts"], "del": False, "method": "POST",
                 "res": doc["res"]}
        async with bench.gate.write(exclude_readers=False), bench.db.client.start_session() as session:
            async with await session.start_transaction():
                await current.insert_one(doc, session=session)
                await history.insert_one(entry, session=session)

    return operation


async def bare_read(bench: Bench) -> Operation:
    async def operation(_: int) -> None:
        expect(await bench.client.get(f"{bench.bare_url}/DocumentReference/{bench.pick('DocumentReference')}",
                                      headers=JSON_HEADERS), 200)

    return operation


async def bare_search(bench: Bench) -> Operation:
    async def operation(_: int) -> None:
        pid, code = patient_and_type(bench)
        expect(await bench.client.get(f"{bench.bare_url}/DocumentReference",
                                      params={"patient": pid, "type": type_key(code)}, headers=JSON_HEADERS), 200)

    return operation


async def bare_read_paths(bench: Bench) -> tuple[str, list[str]]:
    return bench.bare_url or "", [f"/DocumentReference/{bench.pick('DocumentReference')}" for _ in range(WRK_PATHS)]


async def bare_search_paths(bench: Bench) -> tuple[str, list[str]]:
    paths = []
    for _ in range(WRK_PATHS):
        pid, code = patient_and_type(bench)
        paths.append(f"/DocumentReference?patient={pid}&type={quote(type_key(code), safe=':/')}")
    return bench.bare_url or "", paths


SCENARIOS = [
    Scenario("store read", "limit", store_read, front=FRONT_NONE),
    Scenario("store vread", "limit", store_vread, front=FRONT_NONE),
    Scenario("store insert", "limit", store_insert, front=FRONT_NONE),
    Scenario("bare read", "limit", bare_read, front=FRONT_BARE, wrk=bare_read_paths),
    Scenario("bare search patient+type", "limit", bare_search, front=FRONT_BARE, every_scale=True, wrk=bare_search_paths),
]
