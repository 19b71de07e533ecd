"""`POST /fhir/{type}` through the hot routes (fhir_server.api.hot_routes, issue 18) answers exactly
what FastAPI's route for it answered: the same requests, creations and refusals alike, are sent to one
in-process server with its hot routes in front and then with them taken out, and the answers compared
(status, the headers a client reads, the body with what differs between two creations set aside)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from fhir_server.api.hot_routes import HotRoutes
from tests.server_process import InProcessServer, server_token

FHIR_JSON = "application/fhir+json"
# What two creations of the same resource answer differently: the request id, its id, its time.
VARYING = re.compile(rb'[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:\d\d)'
                     rb'|[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} [0-9:]{8} GMT')
HEADERS = ("content-type", "location", "etag", "last-modified", "www-authenticate", "content-location")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InProcessServer, FastAPI]]:
    server = InProcessServer(tmp_path_factory.mktemp("hot-create") / "data").start()
    try:
        assert server._server is not None
        app = server._server.config.app
        assert isinstance(app, FastAPI) and isinstance(app.router.routes[0], HotRoutes)
        # What "If-None-Exist, one match" finds (every case creates twice: hot, then routed).
        single = server.post(f"{server.base_url}/Observation", json=_observation(f"single {UNIQUE}"))
        assert single.status_code == 201, single.text
        yield server, app
    finally:
        server.stop()


def _answer(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    headers = {name: VARYING.sub(b"~", response.headers[name].encode()).decode() for name in HEADERS
               if name in response.headers}
    return response.status_code, headers, VARYING.sub(b"~", response.content)


def _both(served: tuple[InProcessServer, FastAPI], path: str, body: Any, headers: dict[str, str],
          token: str | None) -> tuple[tuple[int, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]:
    """The answer with the hot routes in front, then with FastAPI's routes alone."""
    server, app = served
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    sent = {**headers, **({"Authorization": f"Bearer {token}"} if token else {})}
    hot = app.router.routes[0]
    assert isinstance(hot, HotRoutes)
    first = httpx.post(f"{server.base_url}{path}", content=content, headers=sent)
    app.router.routes.remove(hot)
    try:
        second = httpx.post(f"{server.base_url}{path}", content=content, headers=sent)
    finally:
        app.router.routes.insert(0, hot)
    return _answer(first), _answer(second)


def _observation(text: str, **more: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": text}, "valueInteger": 1, **more}


UNIQUE = uuid.uuid4().hex[:10]
JSON = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
CASES: dict[str, tuple[str, Any, dict[str, str]]] = {
    "created": ("/Observation", _observation(f"created {UNIQUE}"), JSON),
    "return=minimal": ("/Observation", _observation(f"minimal {UNIQUE}"), {**JSON, "Prefer": "return=minimal"}),
    "return=OperationOutcome": ("/Observation", _observation(f"outcome {UNIQUE}"),
                                {**JSON, "Prefer": "return=OperationOutcome"}),
    "answered in XML": ("/Observation?_format=xml", _observation(f"xml {UNIQUE}"), {"Content-Type": FHIR_JSON}),
    "sent in XML": ("/Observation", b'<Observation xmlns="http://hl7.org/fhir"><status value="final"/>'
                    b'<code><text value="sent in xml"/></code></Observation>',
                    {"Content-Type": "application/fhir+xml", "Accept": FHIR_JSON}),
    "raw Binary": ("/Binary", b"%PDF-1.4 hot create", {"Content-Type": "application/pdf", "Accept": FHIR_JSON}),
    "not JSON": ("/Observation", b"{not json", JSON),
    "another type in the body": ("/Observation", {"resourceType": "Patient"}, JSON),
    "invalid resource": ("/Observation", {"resourceType": "Observation", "code": {"text": "no status"},
                                          "valueQuantity": {"value": "one"}}, JSON),
    "unknown element": ("/Observation", _observation("unknown", colour="blue"), JSON),
    "unsupported media type": ("/Observation", b"status=final", {"Content-Type": "text/plain", "Accept": FHIR_JSON}),
    "not a type": ("/NotAType", _observation("not a type"), JSON),
    "If-None-Exist, no match": ("/Observation", _observation(f"conditional {UNIQUE}"),
                                {**JSON, "If-None-Exist": f"code:text=none-{UNIQUE}"}),
    "If-None-Exist, one match": ("/Observation", _observation(f"conditional {UNIQUE}"),
                                 {**JSON, "If-None-Exist": f"code:text=single {UNIQUE}"}),
    # The two creations of "If-None-Exist, no match" before it.
    "If-None-Exist, several matches": ("/Observation", _observation(f"conditional {UNIQUE}"),
                                       {**JSON, "If-None-Exist": f"code:text=conditional {UNIQUE}"}),
    "If-None-Exist, bad criteria": ("/Observation", _observation("bad criteria"),
                                    {**JSON, "If-None-Exist": "no-such-parameter=1"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_create_through_the_hot_route_answers_as_the_fastapi_route(served: tuple[InProcessServer, FastAPI],
                                                                   case: str) -> None:
    server, _ = served
    path, body, headers = CASES[case]
    hot, routed = _both(served, path, body, headers, server.token)
    assert hot == routed
    assert hot[0] != 500


def test_refusals_of_the_caller_are_the_same(served: tuple[InProcessServer, FastAPI]) -> None:
    server, _ = served
    body = _observation(f"refused {UNIQUE}")
    # No token: 401.
    hot, routed = _both(served, "/Observation", body, JSON, None)
    assert hot == routed and hot[0] == 401
    # A token whose scopes do not cover creating an Observation: 403.
    reader = server_token(Path(server.data_dir), server.base_url, scope="system/Patient.read")
    hot, routed = _both(served, "/Observation", body, JSON, reader)
    assert hot == routed and hot[0] == 403


def test_the_cases_cover_creations_and_refusals(served: tuple[InProcessServer, FastAPI]) -> None:
    """The comparison above is worth something only if the cases reach both outcomes."""
    server, _ = served
    statuses = {case: _both(served, *CASES[case], server.token)[0][0] for case in
                ("created", "not JSON", "invalid resource", "If-None-Exist, one match", "If-None-Exist, several matches")}
    assert statuses == {"created": 201, "not JSON": 400, "invalid resource": statuses["invalid resource"],
                        "If-None-Exist, one match": 200, "If-None-Exist, several matches": 412}
    assert statuses["invalid resource"] in (400, 422)
