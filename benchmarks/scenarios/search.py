"""Searches as a practitioner's software issues them, each beside the same query sent straight to the store.

The store queries ask for the same page the server returns, the way a hand-written PyMongo query
would: on the stored index values (`ix`), sort keys (`sk`) and `del: False` that
`fhir_server.search.engine` uses, with the simplest filter that gives that answer (one equality on
`ix.patient`, where the server also matches the absolute-URL form with `$in`). `prepare` checks
once that both return the same ids, so a ratio never compares two different answers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from benchmarks import datagen
from benchmarks.measure import NotAvailable, Operation
from benchmarks.scenarios.base import FRONT_NONE, JSON_HEADERS, WRK_PATHS, Bench, Scenario, expect

PAGE = 20
DEEP_PAGES = 50
NO_INDEX = {"ix": 0}


def one_of(values: list[str]) -> Any:
    """Equality for one value: the embedded store serves `$in` on an indexed field by a full scan."""
    return values[0] if len(values) == 1 else {"$in": values}


def patient_and_type(bench: Bench) -> tuple[str, str]:
    pid, number, _ = bench.pick_patient()
    code = datagen.document_type(number + bench.rng.randrange(datagen.DOCUMENTS_PER_PATIENT))[0]
    return pid, code


def type_key(code: str) -> str:
    return f"{datagen.codes()['document_types']['system']}|{code}"


def ins_key(number: int) -> str:
    return f"{datagen.codes()['ins_system']}|{datagen.ins_value(number)}"


def _match_ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode", "match") == "match"]


async def _ids(bench: Bench, path: str) -> list[str]:
    return _match_ids(expect(await bench.client.get(path, headers=JSON_HEADERS), 200).json())


def _same(server: list[str], store: list[str], what: str) -> None:
    if server != store:
        raise RuntimeError(f"the store query for {what} returns other ids than the server ({store[:2]} vs {server[:2]}); "
                           "the limit would measure another query")


# ---------------------------------------------------------------- patient + type, newest first
def patient_type_path(pid: str, code: str) -> str:
    return f"/DocumentReference?patient={pid}&type={type_key(code)}&_sort=-date&_count={PAGE}"


async def store_patient_type(bench: Bench, pid: str, code: str) -> list[dict[str, Any]]:
    query = {"ix.patient": f"Patient/{pid}", "ix.type": type_key(code), "del": False}
    found = bench.db["DocumentReference"].find(query, NO_INDEX).sort("sk.date", -1).limit(PAGE + 1)
    return await found.to_list(length=PAGE + 1)


async def search_patient_type(bench: Bench) -> Operation:
    async def operation(_: int) -> None:
        expect(await bench.client.get(patient_type_path(*patient_and_type(bench)), headers=JSON_HEADERS), 200)

    return operation


async def store_search_patient_type(bench: Bench) -> Operation:
    pid, code = patient_and_type(bench)
    _same(await _ids(bench, patient_type_path(pid, code)), [d["_id"] for d in (await store_patient_type(bench, pid, code))[:PAGE]],
          "patient+type")

    async def operation(_: int) -> None:
        await store_patient_type(bench, *patient_and_type(bench))

    return operation


# ---------------------------------------------------------------- chained patient.identifier
def chained_path(number: int) -> str:
    return f"/DocumentReference?patient.identifier={ins_key(number)}&_count={PAGE}"


async def store_chained(bench: Bench, number: int) -> list[dict[str, Any]]:
    # The identifier lookup table (fhir_server.search.lookup): one indexed scalar key per identifier.
    found = await bench.db["lookup"].find({"k": f"Patient|identifier|{ins_key(number)}"}, {"r": 1}).to_list(None)
    keys = [f"Patient/{p['r']}" for p in found]
    found = bench.db["DocumentReference"].find({"ix.patient": one_of(keys), "del": False}, NO_INDEX)
    return await found.sort("sid", 1).limit(PAGE + 1).to_list(length=PAGE + 1)


async def search_chained(bench: Bench) -> Operation:
    async def operation(_: int) -> None:
        expect(await bench.client.get(chained_path(bench.pick_patient()[1]), headers=JSON_HEADERS), 200)

    return operation


async def store_search_chained(bench: Bench) -> Operation:
    number = bench.pick_patient()[1]
    _same(await _ids(bench, chained_path(number)), [d["_id"] for d in (await store_chained(bench, number))[:PAGE]],
          "patient.identifier")

    async def operation(_: int) -> None:
        await store_chained(bench, bench.pick_patient()[1])

    return operation


# ---------------------------------------------------------------- _include the subject
def include_path(pid: str) -> str:
    return f"/DocumentReference?patient={pid}&_include=DocumentReference:subject&_count={PAGE}"


async def store_include(bench: Bench, pid: str) -> list[dict[str, Any]]:
    found = bench.db["DocumentReference"].find({"ix.patient": f"Patient/{pid}", "del": False}, NO_INDEX)
    docs = await found.sort("sid", 1).limit(PAGE + 1).to_list(length=PAGE + 1)
    subjects = sorted({d["res"]["subject"]["reference"].split("/", 1)[1] for d in docs[:PAGE]})
    included = await bench.db["Patient"].find({"_id": one_of(subjects), "del": False}, NO_INDEX).to_list(None)
    return docs + included


async def search_include(bench: Bench) -> Operation:
    async def operation(_: int) -> None:
        expect(await bench.client.get(include_path(bench.pick_patient()[0]), headers=JSON_HEADERS), 200)

    return operation


async def store_search_include(bench: Bench) -> Operation:
    pid = bench.pick_patient()[0]
    stored = await store_include(bench, pid)
    _same(await _ids(bench, include_path(pid)), [d["_id"] for d in stored if "subject" in d["res"]][:PAGE], "_include")

    async def operation(_: int) -> None:
        await store_include(bench, bench.pick_patient()[0])

    return operation


# ---------------------------------------------------------------- a deep page, reached by following `next`
async def deep_links(bench: Bench) -> list[tuple[str, str]]:
    """`next` links found after following DEEP_PAGES pages (or to the end): the deepest quarter of
    them, each with the id its page starts after (the last match before it, in id order)."""
    cached = bench.cache.get("deep links")
    if cached and bench.loaded.documents == cached[0]:
        return cached[1]
    url: str | None = f"{bench.base_url}/DocumentReference?_count={PAGE}"
    links: list[tuple[str, str]] = []
    while url and len(links) < DEEP_PAGES:
        bundle = expect(await bench.client.get(url, headers=JSON_HEADERS), 200).json()
        url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
        if url:
            links.append((url, _match_ids(bundle)[-1]))
    if not links:
        raise NotAvailable("the result set has no second page")
    deep = links[len(links) * 3 // 4:]
    bench.cache["deep links"] = (bench.loaded.documents, deep)
    return deep


def _relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path.removeprefix('/fhir')}?{parts.query}"


async def search_deep_page(bench: Bench) -> Operation:
    links = [_relative(u) for u, _ in await deep_links(bench)]

    async def operation(_: int) -> None:
        expect(await bench.client.get(bench.rng.choice(links), headers=JSON_HEADERS), 200)

    return operation


async def store_deep(bench: Bench, after: str) -> list[dict[str, Any]]:
    found = bench.db["DocumentReference"].find({"del": False, "sid": {"$gt": after}}, NO_INDEX)
    return await found.sort("sid", 1).limit(PAGE + 1).to_list(length=PAGE + 1)


async def store_search_deep_page(bench: Bench) -> Operation:
    links = await deep_links(bench)
    boundaries = [after for _, after in links]
    _same(await _ids(bench, _relative(links[0][0])), [d["_id"] for d in (await store_deep(bench, boundaries[0]))[:PAGE]],
          "deep page")

    async def operation(_: int) -> None:
        await store_deep(bench, bench.rng.choice(boundaries))

    return operation


def _on_server(path: str) -> str:
    """A path of the server's FHIR base as wrk sends it: the `|` of a token search escaped."""
    return "/fhir" + quote(path, safe="/?=&:-_.,")


async def patient_type_paths(bench: Bench) -> tuple[str, list[str]]:
    return bench.root_url, [_on_server(patient_type_path(*patient_and_type(bench))) for _ in range(WRK_PATHS)]


async def chained_paths(bench: Bench) -> tuple[str, list[str]]:
    return bench.root_url, [_on_server(chained_path(bench.pick_patient()[1])) for _ in range(WRK_PATHS)]


async def include_paths(bench: Bench) -> tuple[str, list[str]]:
    return bench.root_url, [_on_server(include_path(bench.pick_patient()[0])) for _ in range(WRK_PATHS)]


SCENARIOS = [
    Scenario("search patient+type", "search", search_patient_type,
             {"store": "store search patient+type", "bare": "bare search patient+type"}, every_scale=True,
             wrk=patient_type_paths),
    Scenario("search patient.identifier", "search", search_chained, {"store": "store search patient.identifier"},
             every_scale=True, wrk=chained_paths),
    Scenario("search _include", "search", search_include, {"store": "store search _include"}, every_scale=True,
             wrk=include_paths),
    Scenario("search deep page", "search", search_deep_page, {"store": "store search deep page"}, every_scale=True),
]

LIMITS = [
    Scenario("store search patient+type", "limit", store_search_patient_type, front=FRONT_NONE, every_scale=True),
    Scenario("store search patient.identifier", "limit", store_search_chained, front=FRONT_NONE, every_scale=True),
    Scenario("store search _include", "limit", store_search_include, front=FRONT_NONE, every_scale=True),
    Scenario("store search deep page", "limit", store_search_deep_page, front=FRONT_NONE, every_scale=True),
]
