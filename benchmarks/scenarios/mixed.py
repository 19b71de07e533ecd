"""The mixed load under which peak memory is judged: reads, searches, creates and ITI-65 documents
interleaved, as a record serving practitioners and intake at once sees them."""

from __future__ import annotations

from benchmarks.measure import NotAvailable, Operation
from benchmarks.scenarios import ingest, rest, search
from benchmarks.scenarios.base import Bench, Scenario

# Operation -> share of the requests (out of 20).
MIX = ((rest.read, 8), (search.search_patient_type, 6), (search.search_include, 2), (rest.create, 2), (ingest.iti65, 2))


async def mixed(bench: Bench) -> Operation:
    deck: list[Operation] = []
    for prepare, share in MIX:
        try:
            operation = await prepare(bench)
            await operation(-1)
        except NotAvailable:
            continue
        deck += [operation] * share

    async def operation(i: int) -> None:
        await deck[i % len(deck)](i)

    return operation


SCENARIOS = [Scenario("mixed load", "mixed", mixed)]
