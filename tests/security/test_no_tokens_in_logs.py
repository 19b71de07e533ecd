"""Bearer tokens and client assertions never reach a log: after an authenticated run (a client
credentials exchange, FHIR calls with bearer tokens, refused calls with bad tokens, credentials
sent where they do not belong: `?access_token=`, a `_search` form, the token endpoint's query),
neither the server's captured stdout/stderr at debug level, nor the audit trail, nor the command
log holds any of them, whole or their signature."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from conformance.auth import ASSERTION_TYPE, client_assertion
from tests.security.test_clients import exchange, key_pair, register
from tests.security.tokens import bearer, claims
from tests.server_process import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("logs") / "data"
    process = ServerProcess(data_dir, env={"FHIR_COMMAND_LOG": str(data_dir.parent / "commands.jsonl")},
                            args=["--log-level", "debug"]).start()
    yield process
    process.stop()


def audit_trail(server: ServerProcess) -> str:
    """Every AuditEvent as JSON text, each base64 query entity decoded beside it."""
    texts: list[str] = []
    url: str | None = f"{server.base_url}/AuditEvent?_count=200"
    while url:
        page = server.get(url).json()
        assert page["resourceType"] == "Bundle", page
        for entry in page.get("entry", []):
            texts.append(json.dumps(entry["resource"]))
            for entity in entry["resource"].get("entity", []):
                if "query" in entity:
                    texts.append(base64.b64decode(entity["query"]).decode("latin-1"))
        url = next((link["url"] for link in page.get("link", []) if link["relation"] == "next"), None)
    return "\n".join(texts)


def test_no_token_or_assertion_in_any_log(server: ServerProcess, tmp_path: Path) -> None:
    key, jwks, kid = key_pair(tmp_path, "EC")
    client_id = register(server, jwks, "system/Patient.cruds")
    token_url = f"{server.root_url}/auth/token"
    assertion = client_assertion(client_id, token_url, key.read_bytes(), kid)
    granted = exchange(server, client_id, key, kid, "system/Patient.cruds", assertion=assertion)
    assert granted.status_code == 200, granted.text
    access = granted.json()["access_token"]
    assert exchange(server, client_id, key, kid, "system/Patient.cruds", assertion=assertion).status_code == 401
    in_query = client_assertion(client_id, token_url, key.read_bytes(), kid)
    misplaced = httpx.post(token_url, params={"client_assertion": in_query, "client_assertion_type": ASSERTION_TYPE},
                           data={"grant_type": "client_credentials", "scope": "system/Patient.rs"})
    assert misplaced.status_code == 401

    created = httpx.post(f"{server.base_url}/Patient", headers={**bearer(access), "Content-Type": "application/fhir+json"},
                         json={"resourceType": "Patient", "name": [{"family": f"Logs{uuid.uuid4().hex[:8]}"}]})
    assert created.status_code == 201, created.text
    assert httpx.get(f"{server.base_url}/Patient", params={"_count": "1"}, headers=bearer(access)).status_code == 200
    platform = server.token
    # Credentials in the URL and in a search form: this server reads them from the header only.
    in_url = httpx.get(f"{server.base_url}/Patient", params={"access_token": platform, "_count": "1"},
                       headers=bearer(platform))
    assert in_url.status_code in (200, 400)
    in_form = httpx.post(f"{server.base_url}/Patient/_search", headers=bearer(platform),
                         data={"access_token": access, "_count": "1"})
    assert in_form.status_code in (200, 400)
    # Nor does a token in the URL alone let anyone in.
    assert httpx.get(f"{server.base_url}/Patient", params={"access_token": platform}).status_code == 401
    hidden = httpx.get(f"{server.base_url}/Patient/no-such-patient", params={"access_token": access},
                       headers=bearer(access))
    assert hidden.status_code == 404

    garbage = f"not-a-token-{uuid.uuid4().hex}"
    forged = jwt.encode(claims(server), ec.generate_private_key(ec.SECP384R1()), algorithm="ES384",
                        headers={"kid": "forged"})
    for bad in (garbage, forged):
        refused = httpx.get(f"{server.base_url}/Patient", params={"access_token": bad}, headers=bearer(bad))
        assert refused.status_code == 401

    trail = audit_trail(server)
    assert "access_token=REDACTED" in trail and "client_assertion=REDACTED" in trail, "the URLs are audited"
    commands = (server.data_dir.parent / "commands.jsonl").read_text(encoding="utf-8")
    server.stop()
    output = server.log_path.read_text(encoding="utf-8", errors="replace")
    assert "ready: FHIR R4" in output and commands, "the logs this test reads were written"

    secrets: dict[str, str] = {"access token": access, "platform token": platform, "forged token": forged,
                               "bad token": garbage, "assertion": assertion, "assertion in the query": in_query}
    # A JWT's signature alone would let nobody in, but it is the part that must not be kept.
    secrets |= {f"{name} (signature)": value.rsplit(".", 1)[1] for name, value in list(secrets.items()) if "." in value}
    found: dict[str, Any] = {}
    for where, text in (("server output", output), ("audit trail", trail), ("command log", commands)):
        for name, value in secrets.items():
            if value in text:
                found.setdefault(where, []).append(name)
    assert not found, found
