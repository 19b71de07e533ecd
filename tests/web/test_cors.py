"""CORS as a browser app sees it: the origins of FHIR_CORS_ORIGINS get the headers on the FHIR API,
discovery and the token endpoint (simple requests, preflights, refusals); any other origin gets
none; a server without FHIR_CORS_ORIGINS gives none to anyone."""

from __future__ import annotations

import httpx
import pytest

from fhir_server.web.cors import CorsSettingsInvalid, parse_origins
from tests.server_process import ServerProcess
from tests.web.conftest import ALLOWED_ORIGIN, OTHER_ALLOWED_ORIGIN, REFUSED_ORIGIN, TlsServer

CORS_HEADERS = ("access-control-allow-origin", "access-control-allow-methods", "access-control-allow-headers",
                "access-control-expose-headers", "access-control-allow-credentials")


def listed(value: str) -> set[str]:
    return {item.strip().lower() for item in value.split(",")}


def assert_no_cors(response: httpx.Response) -> None:
    assert not any(name in response.headers for name in CORS_HEADERS), dict(response.headers)


def preflight(client: httpx.Client, path: str, origin: str, method: str, headers: str) -> httpx.Response:
    return client.options(path, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                         "Access-Control-Request-Headers": headers})


def test_an_allowed_origin_reads_the_api_and_its_refusals(tls_server: TlsServer, https: httpx.Client) -> None:
    metadata = https.get("/fhir/metadata", headers={"Origin": ALLOWED_ORIGIN})
    assert metadata.status_code == 200
    assert metadata.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "origin" in listed(metadata.headers["vary"])
    assert {"etag", "location", "content-location"} <= listed(metadata.headers["access-control-expose-headers"])
    assert "access-control-allow-credentials" not in metadata.headers
    # The second configured origin (written with a trailing slash in FHIR_CORS_ORIGINS).
    other = https.get("/.well-known/smart-configuration", headers={"Origin": OTHER_ALLOWED_ORIGIN})
    assert other.headers["access-control-allow-origin"] == OTHER_ALLOWED_ORIGIN
    # Without a token: the 401 is readable by the app, with its WWW-Authenticate.
    refused = https.get("/fhir/Patient", headers={"Origin": ALLOWED_ORIGIN})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "www-authenticate" in listed(refused.headers["access-control-expose-headers"])


def test_an_allowed_origin_creates_and_reads_the_location_and_etag(tls_server: TlsServer, https: httpx.Client) -> None:
    created = https.post("/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": "Cors"}]},
                         headers={**tls_server.headers, "Origin": ALLOWED_ORIGIN,
                                  "Content-Type": "application/fhir+json"})
    assert created.status_code == 201, created.text
    assert created.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert created.headers["location"] and created.headers["etag"]


def test_the_preflight_of_an_allowed_origin_names_what_fhir_clients_send(https: httpx.Client) -> None:
    answer = preflight(https, "/fhir/Patient/1", ALLOWED_ORIGIN, "PUT", "authorization, content-type, if-match")
    assert answer.status_code == 204 and answer.content == b""
    assert answer.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert {"get", "post", "put", "patch", "delete"} <= listed(answer.headers["access-control-allow-methods"])
    assert {"authorization", "content-type", "if-match", "if-none-exist", "if-none-match", "prefer"} <= listed(
        answer.headers["access-control-allow-headers"])
    assert "*" not in answer.headers["access-control-allow-headers"] + answer.headers["access-control-allow-methods"]
    assert int(answer.headers["access-control-max-age"]) > 0
    assert "access-control-allow-credentials" not in answer.headers
    token = preflight(https, "/auth/token", ALLOWED_ORIGIN, "POST", "content-type")
    assert token.status_code == 204 and token.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


def test_the_token_endpoint_answers_an_allowed_origin(https: httpx.Client) -> None:
    answer = https.post("/auth/token", data={"grant_type": "client_credentials"}, headers={"Origin": ALLOWED_ORIGIN})
    assert answer.status_code in (400, 401) and "error" in answer.json()
    assert answer.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


def test_any_other_origin_gets_no_cors_headers(tls_server: TlsServer, https: httpx.Client) -> None:
    for origin in (REFUSED_ORIGIN, "null", ALLOWED_ORIGIN + ":8443", ALLOWED_ORIGIN.replace("https", "http"),
                   ALLOWED_ORIGIN + ".evil.test"):
        simple = https.get("/fhir/metadata", headers={"Origin": origin})
        assert simple.status_code == 200
        assert_no_cors(simple)
        answer = preflight(https, "/fhir/Patient", origin, "POST", "authorization, content-type")
        assert answer.status_code == 403 and answer.json()["resourceType"] == "OperationOutcome"
        assert_no_cors(answer)
    # The origin decides only the CORS headers; the token decides access (ASVS 14.5.2).
    served = https.get("/fhir/Patient?_count=1", headers={**tls_server.headers, "Origin": REFUSED_ORIGIN})
    assert served.status_code == 200
    assert_no_cors(served)


def test_pages_get_no_cors_even_for_an_allowed_origin(https: httpx.Client) -> None:
    assert_no_cors(https.get("/", headers={"Origin": ALLOWED_ORIGIN}))
    assert_no_cors(preflight(https, "/language", ALLOWED_ORIGIN, "POST", "content-type"))


def test_without_fhir_cors_origins_no_origin_gets_cors(server: ServerProcess) -> None:
    if "FHIR_CORS_ORIGINS" in getattr(server, "env", {}):
        pytest.skip("the session's server was given CORS origins")
    assert_no_cors(httpx.get(f"{server.base_url}/metadata", headers={"Origin": ALLOWED_ORIGIN}))
    answer = httpx.options(f"{server.base_url}/Patient", headers={"Origin": ALLOWED_ORIGIN,
                                                                  "Access-Control-Request-Method": "GET"})
    assert answer.status_code == 403
    assert_no_cors(answer)


def test_fhir_cors_origins_names_origins_only() -> None:
    assert parse_origins(" https://App.Example.org:443/ ,http://localhost:3000,https://[::1]:8443") == {
        "https://app.example.org", "http://localhost:3000", "https://[::1]:8443"}
    assert parse_origins("") == frozenset() and parse_origins(None) == frozenset()
    for wrong in ("*", "https://*.example.org", "https://app.example.org/callback", "app.example.org",
                  "ftp://app.example.org", "https://user@app.example.org", "https://app.example.org:99999"):
        with pytest.raises(CorsSettingsInvalid):
            parse_origins(wrong)
