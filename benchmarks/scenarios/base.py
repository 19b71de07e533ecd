"""What a scenario is: a named path, how to prepare its operation, and which limits it is compared to."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from benchmarks.load import FHIR_JSON, Loaded
from fhir_server.storage.gate import Gate
from benchmarks.measure import NotAvailable, Operation

JSON_HEADERS = {"Accept": FHIR_JSON, "Content-Type": FHIR_JSON}


@dataclass
class Bench:
    """Everything a scenario may use: clients on the server, the store and the bare endpoint."""

    base_url: str
    root_url: str
    mllp_port: int
    loaded: Loaded
    client: httpx.AsyncClient
    db: AsyncDatabase[dict[str, Any]]
    scratch: AsyncCollection[dict[str, Any]]
    bare_url: str | None
    # The server's writer gate (its file locks in the data dir): a scenario writing to the store
    # itself takes it, as every process sharing an embedded store must (../shared/DECISIONS.md).
    gate: Gate
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    # Values a scenario computes once per scale (the deep page links).
    cache: dict[str, Any] = field(default_factory=dict)

    def pick(self, rtype: str) -> str:
        return self.rng.choice(self.loaded.ids[rtype])

    def pick_patient(self) -> tuple[str, int, list[str]]:
        pid = self.rng.choice(list(self.loaded.patients))
        number, documents = self.loaded.patients[pid]
        return pid, number, documents


# A GET path wrk drives (benchmarks.wrk) instead of the asyncio loop: the root URL to send to, and
# request paths drawn in advance, which wrk picks from at random.
Paths = Callable[[Bench], Awaitable[tuple[str, list[str]]]]
# How many paths are drawn for wrk: enough that the picks spread over the loaded data.
WRK_PATHS = 2000


# Which process a scenario loads: the FHIR server, the bare endpoint, or the store alone.
FRONT_SERVER, FRONT_BARE, FRONT_NONE = "server", "bare", "store"


@dataclass(frozen=True)
class Scenario:
    name: str
    group: str  # rest | search | ingest | limit
    prepare: Callable[[Bench], Awaitable[Operation]]
    # Limit kind ("store", "bare") -> name of the limit scenario this path is compared to.
    limits: dict[str, str] = field(default_factory=dict)
    front: str = FRONT_SERVER
    # Searches are measured again at every scale; the rest once, at the first.
    every_scale: bool = False
    # Set for the GET paths: wrk drives them (the asyncio `prepare` stays for the mixed load and
    # for `--driver asyncio`).
    wrk: Paths | None = None


def expect(response: httpx.Response, *statuses: int) -> httpx.Response:
    if response.status_code not in statuses:
        raise RuntimeError(f"{response.request.method} {response.request.url.path} -> {response.status_code}: "
                           f"{response.text[:200]}")
    return response


def probe(response: httpx.Response, *statuses: int) -> httpx.Response:
    """Like `expect`, but a path the server does not offer (404 on the route, 405) is 'not available'."""
    if response.status_code in (404, 405) and response.status_code not in statuses:
        body = response.text[:200]
        raise NotAvailable(f"{response.request.method} {response.request.url.path} answers "
                           f"{response.status_code}: {body}")
    return expect(response, *statuses)
