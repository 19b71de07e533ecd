"""The hot routes' own routing (fhir_server.api.hot_routes, issue 18): read, vread and search-type by
GET, and create by POST, reach their endpoints without FastAPI's routing, and only for paths no other
route of the app could claim. What they answer is the endpoints' (the rest of tests/api reads and
creates through them; tests/api/test_hot_create.py compares a create's answers with and without)."""

from __future__ import annotations


import httpx
import pytest
from fastapi import APIRouter
from starlette.routing import Match

from fhir_server.api import instance_routes, type_routes
from fhir_server.api.hot_routes import HotRoutes, claimed
from fhir_server.app import create_app
from fhir_server.config import Settings


@pytest.fixture(scope="module")
def hot(tmp_path_factory: pytest.TempPathFactory) -> HotRoutes:
    # Built, not started: the routes are all there before the lifespan connects to any store.
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("hot") / "data"), "mongodb://127.0.0.1:9")
    first = app.router.routes[0]
    assert isinstance(first, HotRoutes)
    return first


def _endpoint(hot: HotRoutes, path: str, method: str = "GET") -> object:
    match, child = hot.matches({"type": "http", "method": method, "path": path, "root_path": ""})
    return child["endpoint"] if match == Match.FULL else None


def test_read_vread_and_search_reach_their_endpoints_first(hot: HotRoutes) -> None:
    assert _endpoint(hot, "/fhir/DocumentReference/a-1.b") is instance_routes.read
    assert _endpoint(hot, "/fhir/DocumentReference/a-1.b/_history/12") is instance_routes.vread
    assert _endpoint(hot, "/fhir/DocumentReference") is type_routes.search_get
    assert _endpoint(hot, "/fhir/DocumentReference", "POST") is type_routes.create


@pytest.mark.parametrize("path", [
    "/fhir/AuditEvent",  # the audit store's own (fhir_server.audit.routes)
    "/fhir", "/fhir/", "/fhir/Observation/_search", "/fhir/Observation/o1", "/fhir/Patient/$match",
    "/fhir/$export", "/fhir/NotAType", "/fhir/Observation/", "/ingest/cda",
])
def test_other_posts_go_on_to_the_app_routes(hot: HotRoutes, path: str) -> None:
    assert _endpoint(hot, path, "POST") is None


@pytest.mark.parametrize("path", [
    "/fhir/AuditEvent/e1",  # served from the audit store (fhir_server.audit.routes)
    "/fhir/AuditEvent",
    "/fhir/Patient/$export", "/fhir/metadata", "/fhir/_history", "/fhir/$export",
    "/fhir/Patient/p1/_history", "/fhir/Patient/p1/$everything", "/fhir/Patient/p1/Observation",
    "/fhir/Observation/o1/_history/first", "/fhir/Observation/" + "x" * 65, "/fhir/Observation/o_1",
    "/fhir/NotAType/x1", "/fhir/NotAType", "/fhir/Observation/", "/fhir", "/fhir/", "/static/app.css",
])
def test_other_paths_go_on_to_the_app_routes(hot: HotRoutes, path: str) -> None:
    assert _endpoint(hot, path) is None


@pytest.mark.parametrize("method", ["HEAD", "POST", "PUT", "PATCH", "DELETE"])
def test_other_methods_go_on_to_the_app_routes(hot: HotRoutes, method: str) -> None:
    assert _endpoint(hot, "/fhir/Observation/o1", method) is None
    if method != "POST":
        assert _endpoint(hot, "/fhir/Observation", method) is None


def test_a_route_that_could_answer_a_hot_path_keeps_it() -> None:
    """A GET route added later for a path of the same shape takes its type out of the hot routes."""
    router = APIRouter()

    async def endpoint() -> None:
        return None

    router.add_api_route("/fhir/Patient/everything", endpoint, methods=["GET"])  # an id-like literal
    router.add_api_route("/fhir/Observation/$lastn", endpoint, methods=["GET"])  # never an id
    router.add_api_route("/fhir/Group", endpoint, methods=["GET"])
    router.add_api_route("/fhir/Encounter", endpoint, methods=["POST"])
    router.add_api_route("/fhir/{type}/{id}/_history/{version}", endpoint, methods=["GET"])
    taken = claimed(router.routes, ["Patient", "Observation", "Group", "Encounter"], frozenset())
    assert taken["read"] == {"Patient"}
    assert taken["search"] == {"Group"}
    assert taken["create"] == {"Encounter"}
    assert taken["vread"] == {"Patient", "Observation", "Group", "Encounter"}


def test_the_endpoints_served_here_do_not_claim_their_own_paths() -> None:
    router = APIRouter()
    router.add_api_route("/fhir/{resource_type}/{resource_id}", instance_routes.read, methods=["GET"])
    assert claimed(router.routes, ["Observation"], frozenset({instance_routes.read}))["read"] == set()
    assert claimed(router.routes, ["Observation"], frozenset())["read"] == {"Observation"}


def test_through_the_hot_routes_reads_answer_as_the_fhir_routes_did(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Observation", json={"resourceType": "Observation", "status": "final",
                                              "code": {"text": unique}, "valueInteger": 1})
    assert created.status_code == 201, created.text
    oid = created.json()["id"]
    read = fhir.get(f"/Observation/{oid}", params={"_elements": "status"})
    assert read.status_code == 200
    assert read.headers["etag"] == 'W/"1"' and read.headers["last-modified"].endswith(" GMT")
    assert "valueInteger" not in read.json() and read.json()["status"] == "final"
    vread = fhir.get(f"/Observation/{oid}/_history/1", params={"_format": "xml"})
    assert vread.status_code == 200 and vread.headers["content-type"].startswith("application/fhir+xml")
    found = fhir.get("/Observation", params={"code:text": unique})
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [oid]
    # Refusals raised by the endpoints still become OperationOutcomes, in the format asked for.
    missing = fhir.get(f"/Observation/{unique}-none", params={"_format": "xml"})
    assert missing.status_code == 404 and "<OperationOutcome xmlns=\"http://hl7.org/fhir\">" in missing.text
    unknown = fhir.get(f"/Observation/{oid}/_history/7")
    assert unknown.status_code == 404 and unknown.json()["resourceType"] == "OperationOutcome"
    unsupported = fhir.get(f"/Observation/{oid}", headers={"Accept": "text/csv"})
    assert unsupported.status_code == 406 and unsupported.json()["resourceType"] == "OperationOutcome"
    refused = httpx.get(f"{fhir.base_url}/Observation/{oid}")  # no token
    assert refused.status_code == 401 and refused.json()["resourceType"] == "OperationOutcome"
