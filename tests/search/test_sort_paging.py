"""_sort on one or several keys, and keyset paging: following next links (then previous links back)
shows every match exactly once, in order, over more than ten pages; _count default and maximum."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.search.conftest import STRICT, Store, link, match_ids
from tests.server_process import ServerProcess

FAMILIES = ["Martin", "bernard", "Thomas", "petit", "Robert", "richard", "Durand", "dubois", "Moreau", "laurent"]
TOTAL = 57
PAGE = 5


def patient(i: int) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Patient", "gender": ["male", "female", "other"][i % 3]}
    if i % 7 != 3:  # some have no name at all
        resource["name"] = [{"family": f"{FAMILIES[i % len(FAMILIES)]}{i:02d}", "given": [f"G{i % 4}"]}]
    if i % 5 != 0:  # some have no birth date
        resource["birthDate"] = f"19{50 + i % 11:02d}-0{1 + i % 9}-1{i % 10}"
    return resource


@pytest.fixture(scope="module")
def data(store: Store) -> dict[str, dict[str, Any]]:
    resources = {}
    for i in range(TOTAL):
        resource = patient(i)
        resources[store.create(resource)] = resource
    return resources


def pages(fhir: httpx.Client, url: str, relation: str) -> Iterator[dict[str, Any]]:
    next_url: str | None = url
    for _ in range(TOTAL + 2):  # a link cycle would otherwise never end
        if not next_url:
            return
        response = fhir.get(next_url)
        assert response.status_code == 200, response.text
        bundle = response.json()
        yield bundle
        next_url = link(bundle, relation)
    raise AssertionError(f"more pages than matches following {relation} links")


def ordered_ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", ()) if e["search"]["mode"] == "match"]


def walk(store: Store, sort: str | None) -> tuple[list[str], list[str]]:
    """Every match in page order going forward, then going back from the last page via previous."""
    params = [store.tag_param, ("_count", str(PAGE))] + ([("_sort", sort)] if sort else [])
    first = store.fhir.build_request("GET", "/Patient", params=params).url
    forward: list[list[str]] = []
    last: dict[str, Any] = {}
    for bundle in pages(store.fhir, str(first), "next"):
        forward.append(ordered_ids(bundle))
        assert len(forward[-1]) <= PAGE
        last = bundle
    assert link(last, "previous") is not None
    backward: list[list[str]] = []
    for bundle in pages(store.fhir, link(last, "previous") or "", "previous"):
        backward.insert(0, ordered_ids(bundle))
    backward.append(forward[-1])
    assert len(forward) > 10
    return [i for p in forward for i in p], [i for p in backward for i in p]


def family(resource: dict[str, Any]) -> str | None:
    return resource["name"][0]["family"].lower() if "name" in resource else None


def birth(resource: dict[str, Any]) -> str | None:
    return resource.get("birthDate")


def assert_sorted(order: list[str], data: dict[str, dict[str, Any]], key: Callable[[dict[str, Any]], str | None],
                  descending: bool) -> None:
    """Present values in order; resources lacking the value together at one end."""
    values = [key(data[i]) for i in order]
    present = [v for v in values if v is not None]
    assert present == sorted(present, reverse=descending)
    missing = [i for i, v in enumerate(values) if v is None]
    assert missing == list(range(len(missing))) or missing == list(range(len(values) - len(missing), len(values)))


@pytest.mark.parametrize("sort", [None, "_id", "-_id", "family", "-birthdate", "birthdate", "-_lastUpdated", "gender,-birthdate"])
def test_paging_forward_and_back_sees_every_match_once(store: Store, data: dict[str, dict[str, Any]], sort: str | None) -> None:
    forward, backward = walk(store, sort)
    assert len(forward) == TOTAL and set(forward) == set(data)
    assert backward == forward
    if sort in (None, "_id"):
        assert forward == sorted(data)
    elif sort == "-_id":
        assert forward == sorted(data, reverse=True)
    elif sort == "family":
        assert_sorted(forward, data, family, descending=False)
    elif sort in ("birthdate", "-birthdate"):
        assert_sorted(forward, data, birth, descending=sort.startswith("-"))


def test_sort_on_several_keys(store: Store, data: dict[str, dict[str, Any]]) -> None:
    bundle = store.bundle("/Patient", [("_sort", "gender,-birthdate"), ("_count", "100")])
    order = ordered_ids(bundle)
    genders = [data[i]["gender"] for i in order]
    assert genders == sorted(genders)
    for gender in ("female", "male", "other"):
        assert_sorted([i for i in order if data[i]["gender"] == gender], data, birth, descending=True)


def test_sort_on_unknown_parameter_is_400(store: Store, data: dict[str, dict[str, Any]]) -> None:
    assert store.get("/Patient", {"_sort": "nosuch"}, headers=STRICT).status_code == 400


def test_self_link_repeats_the_page(store: Store, data: dict[str, dict[str, Any]]) -> None:
    first = store.bundle("/Patient", [("_count", str(PAGE)), ("_sort", "family")])
    second = store.fhir.get(link(first, "next") or "").json()
    again = store.fhir.get(link(second, "self") or "").json()
    assert ordered_ids(again) == ordered_ids(second)
    assert "_sort=family" in (link(second, "next") or "")


def test_total_parameter(store: Store, data: dict[str, dict[str, Any]]) -> None:
    accurate = store.bundle("/Patient", [("_count", str(PAGE)), ("_total", "accurate")])
    assert accurate["total"] == TOTAL
    assert "total" not in store.bundle("/Patient", [("_count", str(PAGE)), ("_total", "none")])
    estimate = store.bundle("/Patient", [("_count", str(PAGE)), ("_total", "estimate")])
    assert estimate.get("total", TOTAL) == TOTAL
    # One page holding everything knows its total without counting.
    assert store.bundle("/Patient", [("_count", "100")])["total"] == TOTAL
    assert store.get("/Patient", {"_total": "maybe"}, headers=STRICT).status_code == 400


def test_count_zero_gives_the_total_alone(store: Store, data: dict[str, dict[str, Any]]) -> None:
    bundle = store.bundle("/Patient", {"_count": "0"})
    assert bundle["total"] == TOTAL and "entry" not in bundle
    assert store.get("/Patient", {"_count": "-1"}, headers=STRICT).status_code == 400
    assert store.get("/Patient", {"_count": "many"}, headers=STRICT).status_code == 400


def test_bad_page_cursor_is_400(store: Store, data: dict[str, dict[str, Any]]) -> None:
    assert store.get("/Patient", {"_page": "not-a-cursor"}).status_code == 400


@pytest.fixture(scope="module")
def small_pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    process = ServerProcess(tmp_path_factory.mktemp("paging") / "data",
                            env={"FHIR_DEFAULT_COUNT": "3", "FHIR_MAX_COUNT": "4"}).start()
    try:
        with process.client(process.base_url, headers={"Accept": "application/fhir+json"}) as client:
            yield client
    finally:
        process.stop()


def test_count_default_and_maximum_are_configurable(small_pages: httpx.Client) -> None:
    for i in range(6):
        assert small_pages.post("/Patient", json={"resourceType": "Patient", "gender": "male"}).status_code == 201
    default = small_pages.get("/Patient").json()
    assert len(match_ids(default)) == 3 and "_count=3" in (link(default, "self") or "")
    capped = small_pages.get("/Patient", params={"_count": "50"}).json()
    assert len(match_ids(capped)) == 4 and "_count=4" in (link(capped, "self") or "")
    assert len(match_ids(small_pages.get("/Patient", params={"_count": "2"}).json())) == 2
