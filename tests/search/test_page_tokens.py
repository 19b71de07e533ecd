"""`_page` values are tokens the server signed for one search (issue 10, item 7): made-up, altered
or borrowed values answer 400 without a word about internals, and the server's links keep working
across a restart on the same data dir."""

from __future__ import annotations

import asyncio
import base64
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import orjson
import pytest
from pymongo import AsyncMongoClient

from fhir_server.security.server_keys import KEYS_COLLECTION, stored_secret
from fhir_server.storage.embedded import EmbeddedStore
from tests.search.conftest import Store, link, match_ids
from tests.server_process import ServerProcess

PATIENTS = 7
PAGE = 3


def unsigned(cursor: Any) -> str:
    """A cursor as the server wrote it before tokens were signed: bare base64url JSON."""
    return base64.urlsafe_b64encode(orjson.dumps(cursor)).decode().rstrip("=")


@pytest.fixture(scope="module")
def data(store: Store) -> list[str]:
    ids = [store.create({"resourceType": "Patient", "gender": "male" if i % 2 else "female"}) for i in range(PATIENTS)]
    store.create({"resourceType": "Practitioner", "gender": "female"})
    return ids


def page_value(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["_page"]


def with_page(url: str, value: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "_page"] + [("_page", value)]
    return parts._replace(query=urlencode(query)).geturl()


def first_next(store: Store, path: str = "/Patient", params: list[tuple[str, str]] | None = None) -> str:
    bundle = store.bundle(path, params or [("_count", str(PAGE))])
    url = link(bundle, "next")
    assert url, bundle
    return url


def refused(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    text = response.text
    for internal in ("Error", "Exception", "$gt", "Failure", "Traceback", "sid", "sk.", "ix."):
        assert internal not in text, text


FORGED = [
    "eyJmIjp0cnVlLCJ2IjpbXX0",  # {"f":true,"v":[]}: an IndexError (500) before
    unsigned({"f": True, "v": [None]}),  # an IndexError (500) before
    unsigned({"f": True, "v": [{"$gt": ""}]}),  # an operator sent to the store (500) before
    unsigned({"f": True, "v": ["0"]}),  # well formed, but not signed
    unsigned({"f": True, "v": [0, ["0"]]}),
    "not-a-cursor",
    "",
]


@pytest.mark.parametrize("value", FORGED)
def test_values_the_server_did_not_sign_are_400(store: Store, data: list[str], value: str) -> None:
    refused(store.get("/Patient", {"_page": value}))
    refused(store.get("", {"_type": "Patient,Practitioner", "_page": value}))
    refused(store.fhir.get("/Patient/_history", params={"_page": value}))


def test_forged_values_reach_no_query_even_with_a_signature_of_their_own(store: Store, data: list[str]) -> None:
    """A payload of another token with this search's signature part is not this search's token either."""
    url = first_next(store)
    signature = page_value(url).split(".")[1]
    for payload in ({"f": True, "v": []}, {"f": True, "v": [{"$gt": ""}]}, {"f": True, "v": [None]}):
        refused(store.fhir.get(with_page(url, f"{unsigned(payload)}.{signature}")))


def test_altered_token_is_400(store: Store, data: list[str]) -> None:
    url = first_next(store)
    payload, signature = page_value(url).split(".")
    other = "A" if signature[0] != "A" else "B"
    refused(store.fhir.get(with_page(url, f"{payload}.{other}{signature[1:]}")))
    refused(store.fhir.get(with_page(url, f"{payload}.")))
    refused(store.fhir.get(with_page(url, payload)))
    cursor = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    cursor["v"] = ["zzzz"]  # further along than the page the server gave
    refused(store.fhir.get(with_page(url, f"{unsigned(cursor)}.{signature}")))
    assert store.fhir.get(url).status_code == 200


@pytest.mark.parametrize("other", [
    [("gender", "female")],  # other criteria
    [("_count", "3")],  # other page size
    [("_sort", "-_id")],  # other order
])
def test_token_of_one_search_is_400_on_another(store: Store, data: list[str], other: list[tuple[str, str]]) -> None:
    url = first_next(store, params=[("gender", "male"), ("_count", "2")])
    token = page_value(url)
    assert store.get("/Patient", [("gender", "male"), ("_count", "2"), ("_page", token)]).status_code == 200
    params = dict([("gender", "male"), ("_count", "2"), *other])
    refused(store.get("/Patient", [*params.items(), ("_page", token)]))


def test_token_of_one_route_is_400_on_another(store: Store, data: list[str]) -> None:
    token = page_value(first_next(store))
    refused(store.get("/Practitioner", {"_count": str(PAGE), "_page": token}))
    refused(store.get("", {"_type": "Patient", "_count": str(PAGE), "_page": token}))
    refused(store.fhir.get("/Patient/_history", params={"_count": str(PAGE), "_page": token}))
    history = store.fhir.get("/Patient/_history", params={"_count": "1"}).json()
    history_token = page_value(link(history, "next") or "")
    refused(store.get("/Patient", {"_count": "1", "_page": history_token}))
    refused(store.fhir.get("/Practitioner/_history", params={"_count": "1", "_page": history_token}))


def test_order_of_criteria_and_values_does_not_matter(store: Store, data: list[str]) -> None:
    url = first_next(store, params=[("gender", "male,female"), ("birthdate:missing", "true"), ("_count", str(PAGE))])
    token = page_value(url)
    same = store.get("/Patient", [("_count", str(PAGE)), ("birthdate:missing", "true"), ("gender", "female,male"),
                                  ("_page", token)])
    assert same.status_code == 200, same.text


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "data").start()
    try:
        yield process
    finally:
        process.stop()


def test_links_survive_a_restart_on_the_same_data_dir(own_server: ServerProcess) -> None:
    with own_server.client(own_server.base_url, headers={"Accept": "application/fhir+json"}) as client:
        for _ in range(PATIENTS):
            assert client.post("/Patient", json={"resourceType": "Patient"}).status_code == 201
        first = client.get("/Patient", params={"_count": str(PAGE)}).json()
        second = client.get(link(first, "next") or "").json()
    key = own_server.data_dir / "keys" / "page-tokens.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    next_path = urlsplit(link(second, "next") or "")
    previous_path = urlsplit(link(second, "previous") or "")
    own_server.stop()
    own_server.start()
    with own_server.client(own_server.root_url, headers={"Accept": "application/fhir+json"}) as client:
        third = client.get(f"{next_path.path}?{next_path.query}")
        assert third.status_code == 200, third.text
        back = client.get(f"{previous_path.path}?{previous_path.query}")
        assert back.status_code == 200, back.text
    assert match_ids(back.json()) == match_ids(first)
    assert not match_ids(third.json()) & (match_ids(first) | match_ids(second))


def test_another_data_dir_has_another_key(own_server: ServerProcess, store: Store, data: list[str]) -> None:
    """Two deployments do not accept each other's tokens."""
    elsewhere = urlsplit(first_next(store))
    response = own_server.get(f"{own_server.root_url}{elsewhere.path}?{elsewhere.query}")
    refused(response)


def test_with_mongodb_url_every_process_shares_the_key_in_the_store(tmp_path: Path) -> None:
    """The secret made by the first process is the one every other process reads."""
    store = EmbeddedStore(tmp_path / "store")
    url = store.start()

    async def secrets() -> list[bytes]:
        clients = [AsyncMongoClient(url) for _ in range(4)]
        try:
            return list(await asyncio.gather(*(stored_secret(c.get_database("fhir"), "page-tokens") for c in clients)))
        finally:
            for client in clients:
                await client.close()

    async def documents() -> list[dict[str, Any]]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
        try:
            return await client.get_database("fhir")[KEYS_COLLECTION].find().to_list(length=None)
        finally:
            await client.close()

    try:
        made = asyncio.run(secrets())
        again = asyncio.run(secrets())
        stored = asyncio.run(documents())
    finally:
        store.stop()
    assert len(set(made + again)) == 1 and len(made[0]) == 32
    assert [d["_id"] for d in stored] == ["page-tokens"]
