"""One search, four routes, one answer (issue 10, item 5): `GET [type]?`, `POST [type]/_search`,
`GET [base]?_type=` and the search entries of a batch page alike under FHIR_MAX_COUNT, read
`_count=0` as the total alone, and give Binaries with their data as `GET [base]/Binary/[id]` does."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from tests.search.conftest import TAG_SYSTEM, entries, link, match_ids
from tests.server_process import ServerProcess

MAX_COUNT = 5
PATIENTS = 8
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
Params = list[tuple[str, str]]


@pytest.fixture(scope="module")
def fhir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    process = ServerProcess(tmp_path_factory.mktemp("routes") / "data", env={"FHIR_MAX_COUNT": str(MAX_COUNT)}).start()
    try:
        with process.client(process.base_url, headers={"Accept": "application/fhir+json"}, timeout=60.0) as client:
            yield client
    finally:
        process.stop()


TAG = ("_tag", f"{TAG_SYSTEM}|routes")
META = {"tag": [{"system": TAG_SYSTEM, "code": "routes"}]}
PAYLOADS = [b"%PDF-1.4 first", b"second \x00\xff bytes"]


@pytest.fixture(scope="module")
def data(fhir: httpx.Client) -> dict[str, Any]:
    patients = []
    for i in range(PATIENTS):
        created = fhir.post("/Patient", json={"resourceType": "Patient", "meta": META, "gender": "female"})
        assert created.status_code == 201, created.text
        patients.append(created.json()["id"])
    binaries = {}
    for payload in PAYLOADS:
        resource = {"resourceType": "Binary", "meta": META, "contentType": "application/octet-stream",
                    "data": base64.b64encode(payload).decode()}
        created = fhir.post("/Binary", json=resource)
        assert created.status_code == 201, created.text
        binaries[created.json()["id"]] = payload
    return {"patients": patients, "binaries": binaries}


def by_get(fhir: httpx.Client, rtype: str, params: Params) -> dict[str, Any]:
    return _ok(fhir.get(f"/{rtype}", params=params))


def by_post(fhir: httpx.Client, rtype: str, params: Params) -> dict[str, Any]:
    return _ok(fhir.post(f"/{rtype}/_search", content=urlencode(params), headers=FORM))


def by_system(fhir: httpx.Client, rtype: str, params: Params) -> dict[str, Any]:
    return _ok(fhir.get("", params=[("_type", rtype), *params]))


def _batch(fhir: httpx.Client, url: str) -> dict[str, Any]:
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [{"request": {"method": "GET", "url": url}}]}
    answer = _ok(fhir.post("", json=bundle, headers={"Content-Type": "application/fhir+json"}))["entry"][0]
    assert answer["response"]["status"] == "200 OK", answer
    return answer["resource"]


def by_batch(fhir: httpx.Client, rtype: str, params: Params) -> dict[str, Any]:
    return _batch(fhir, f"{rtype}?{urlencode(params)}")


def by_system_batch(fhir: httpx.Client, rtype: str, params: Params) -> dict[str, Any]:
    return _batch(fhir, f"?{urlencode([('_type', rtype), *params])}")


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


ROUTES: dict[str, Callable[[httpx.Client, str, Params], dict[str, Any]]] = {
    "GET": by_get, "POST _search": by_post, "system": by_system, "batch": by_batch, "system in batch": by_system_batch,
}


def count_in_self_link(bundle: dict[str, Any]) -> str | None:
    return dict(parse_qsl(urlsplit(link(bundle, "self") or "").query)).get("_count")


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("count", [None, "3", "100"])
def test_every_route_pages_alike_under_the_maximum(fhir: httpx.Client, data: dict[str, Any], route: str,
                                                    count: str | None) -> None:
    params = [TAG] + ([("_count", count)] if count else [])
    bundle = ROUTES[route](fhir, "Patient", params)
    page = min(int(count or MAX_COUNT), MAX_COUNT)  # FHIR_DEFAULT_COUNT (20) is over the maximum too
    assert len(match_ids(bundle)) == page
    assert count_in_self_link(bundle) == str(page)
    # The rest comes by following next, whichever route the first page came from.
    seen = list(match_ids(bundle))
    next_url = link(bundle, "next")
    while next_url:
        following = _ok(fhir.get(next_url))
        assert 0 < len(match_ids(following)) <= page
        seen += match_ids(following)
        next_url = link(following, "next")
    assert sorted(seen) == sorted(data["patients"])


@pytest.mark.parametrize("route", ROUTES)
def test_count_zero_is_the_total_alone_on_every_route(fhir: httpx.Client, data: dict[str, Any], route: str) -> None:
    bundle = ROUTES[route](fhir, "Patient", [TAG, ("_count", "0")])
    assert bundle["total"] == PATIENTS
    assert not entries(bundle, "match") and not link(bundle, "next")


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_gives_binaries_with_their_data(fhir: httpx.Client, data: dict[str, Any], route: str) -> None:
    bundle = ROUTES[route](fhir, "Binary", [TAG])
    found = {e["resource"]["id"]: base64.b64decode(e["resource"]["data"]) for e in entries(bundle, "match")}
    assert found == data["binaries"]
    for bid, payload in data["binaries"].items():
        read = fhir.get(f"/Binary/{bid}", headers={"Accept": "application/fhir+json"}).json()
        assert base64.b64decode(read["data"]) == payload


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_reads_count_the_same_way(fhir: httpx.Client, data: dict[str, Any], route: str) -> None:
    for bad in ("-1", "many", "²"):
        # Leniently, an unreadable _count is ignored like any unreadable parameter: the default applies.
        assert len(match_ids(ROUTES[route](fhir, "Patient", [TAG, ("_count", bad)]))) == MAX_COUNT
        strict = fhir.get("/Patient", params=[TAG, ("_count", bad)], headers={"Prefer": "handling=strict"})
        assert strict.status_code == 400, strict.text


def test_history_count_follows_the_same_rules(fhir: httpx.Client, data: dict[str, Any]) -> None:
    history = _ok(fhir.get("/Patient/_history", params={"_count": "100"}))
    assert len(history["entry"]) == MAX_COUNT
    assert fhir.get("/Patient/_history", params={"_count": "²"}).status_code == 400
