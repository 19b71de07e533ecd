"""The API's description: `/openapi.json`, generated from the registered routes, and the reference page
at `/docs` made from it (server-rendered, no script, under the page layer's CSP)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.server_process import ServerProcess
from tests.web.pages import assert_page_headers, inline_code


@pytest.fixture
def anonymous(server: ServerProcess) -> Iterator[httpx.Client]:
    """No bearer token: the description is as open as the CapabilityStatement."""
    with httpx.Client(base_url=server.root_url, timeout=30.0) as client:
        yield client


@pytest.fixture
def schema(anonymous: httpx.Client) -> dict:
    response = anonymous.get("/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    return response.json()


def test_openapi_describes_the_fhir_interactions_and_the_other_endpoints(schema: dict, fhir: httpx.Client) -> None:
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    read = paths["/fhir/{resource_type}/{resource_id}"]["get"]
    assert read["tags"] == ["FHIR"] and read["summary"].startswith("read")
    assert set(read["responses"]["200"]["content"]) == {"application/fhir+json", "application/fhir+xml"}
    patch = paths["/fhir/{resource_type}/{resource_id}"]["patch"]
    assert "application/json-patch+json" in patch["requestBody"]["content"]
    assert paths["/fhir/{resource_type}"]["post"]["summary"].startswith("create")
    assert paths["/fhir"]["post"]["summary"] == "batch or transaction Bundle"
    assert paths["/ingest/cda"]["post"]["tags"] == ["ingest"]
    assert paths["/auth/token"]["post"]["tags"] == ["auth"]
    assert "/openapi.json" in paths
    assert not any(path in paths for path in ("/", "/language", "/docs", "/guide"))  # pages are not API
    # The generic routes name the types the CapabilityStatement lists, with their interactions.
    capabilities = fhir.get("/metadata").json()
    listed = [r["type"] for r in capabilities["rest"][0]["resource"]]
    parameter = next(p for p in read["parameters"] if p["name"] == "resource_type")
    assert parameter["schema"]["enum"] == listed
    patient = next(r for r in schema["x-fhir-resources"] if r["type"] == "Patient")
    assert {"read", "search-type", "create", "patch"} <= set(patient["interactions"]) and "identifier" in patient["searchParams"]


def test_the_reference_page_lists_endpoints_and_types_without_script(anonymous: httpx.Client) -> None:
    page = anonymous.get("/docs", headers={"Accept-Language": "en"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert_page_headers(page)
    assert inline_code(page.text) == [] and "<script" not in page.text
    assert "API reference" in page.text and 'href="/openapi.json"' in page.text and 'href="/guide"' in page.text
    for shown in ("GET /fhir/{type}/{resource_id}", "POST /ingest/cda", "POST /auth/token", 'id="type-Patient"',
                  "application/fhir+xml"):
        assert shown in page.text, shown
