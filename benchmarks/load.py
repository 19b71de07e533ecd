"""Loading generated data through the server's own transaction endpoint, several bundles in flight."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

FHIR_JSON = "application/fhir+json"


@dataclass
class Loaded:
    """What the measurements need to know about the stored data: ids by type, and the patients' numbers."""

    ids: dict[str, list[str]] = field(default_factory=dict)
    # Patient id -> (patient number, ids of its DocumentReferences)
    patients: dict[str, tuple[int, list[str]]] = field(default_factory=dict)
    documents: int = 0
    resources: int = 0
    bundles: int = 0
    seconds: float = 0.0

    def add(self, bundle: dict[str, Any], response: dict[str, Any]) -> None:
        current_patient: str | None = None
        for request_entry, response_entry in zip(bundle["entry"], response.get("entry", []), strict=True):
            rtype = request_entry["resource"]["resourceType"]
            location = response_entry["response"]["location"]
            rid = location.split("/_history/")[0].rsplit("/", 1)[-1]
            self.ids.setdefault(rtype, []).append(rid)
            if rtype == "Patient":
                current_patient = rid
                number = int(request_entry["resource"]["identifier"][0]["value"]) - 1_800_000_000_000
                self.patients[rid] = (number, [])
            elif rtype == "DocumentReference" and current_patient is not None:
                self.patients[current_patient][1].append(rid)
                self.documents += 1
        self.resources += len(bundle["entry"])
        self.bundles += 1

    def merge(self, other: Loaded) -> None:
        for rtype, ids in other.ids.items():
            self.ids.setdefault(rtype, []).extend(ids)
        self.patients.update(other.patients)
        self.documents += other.documents
        self.resources += other.resources
        self.bundles += other.bundles
        self.seconds += other.seconds


async def post_transaction(client: httpx.AsyncClient, bundle: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("", content=orjson.dumps(bundle),
                                 headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON})
    if response.status_code != 200:
        raise RuntimeError(f"transaction refused ({response.status_code}): {response.text[:500]}")
    return response.json()


async def load(base_url: str, bundles: Iterable[dict[str, Any]], concurrency: int = 8,
               progress: Any = None, headers: dict[str, str] | None = None) -> Loaded:
    """Post every bundle, `concurrency` at a time; `progress(loaded)` is called after each one."""
    loaded = Loaded()
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=concurrency * 2)

    async def worker(client: httpx.AsyncClient) -> None:
        while (bundle := await queue.get()) is not None:
            loaded.add(bundle, await post_transaction(client, bundle))
            if progress is not None:
                progress(loaded)

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=300.0, headers=headers,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        async def produce() -> None:
            for bundle in bundles:
                await queue.put(bundle)
            for _ in range(concurrency):
                await queue.put(None)

        # One task set: a refused bundle stops the producer too instead of leaving it blocked on a full queue.
        tasks = [asyncio.create_task(produce()), *(asyncio.create_task(worker(client)) for _ in range(concurrency))]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
    loaded.seconds = time.perf_counter() - started
    return loaded
