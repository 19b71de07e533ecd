"""Registered clients end to end: `clients add` while the server runs, a real SMART Backend
Services exchange (private_key_jwt, RS384 and ES384), replay refused, `clients disable` stopping
its tokens and its MLLP sender at once, MLLP senders allowed by registration or FHIR_MLLP_SENDERS,
and the conformance tool getting its token with client credentials."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conformance.auth import ASSERTION_TYPE, client_assertion
from fhir_server.ingest.hl7v2 import er7
from fhir_server.ingest.mllp import mllp_send
from tests.hl7v2.test_intake_store import personalised
from tests.security.tokens import bearer
from tests.server_process import ServerProcess

CLIENTS = [sys.executable, "-m", "fhir_server.cli", "clients"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("clients") / "data", env={"FHIR_MLLP_SENDERS": "LISTEDFAC"}).start()
    yield process
    process.stop()


def clients(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLIENTS, *args[:1], "--data-dir", str(server.data_dir), *args[1:]],
                          capture_output=True, text=True, timeout=120)


def key_pair(tmp_path: Path, kind: str) -> tuple[Path, Path, str]:
    """A private key file and a JWKS file of its public key, with the key id."""
    private = rsa.generate_private_key(65537, 2048) if kind == "RSA" else ec.generate_private_key(ec.SECP384R1())
    kid = uuid.uuid4().hex[:8]
    algorithm = jwt.algorithms.RSAAlgorithm if kind == "RSA" else jwt.algorithms.ECAlgorithm
    public = {**algorithm.to_jwk(private.public_key(), as_dict=True), "kid": kid}
    key_file, jwks_file = tmp_path / f"{kid}.pem", tmp_path / f"{kid}.jwks.json"
    key_file.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    jwks_file.write_text(json.dumps({"keys": [public]}), encoding="utf-8")
    return key_file, jwks_file, kid


def register(server: ServerProcess, jwks: Path, scope: str, *more: str) -> str:
    added = clients(server, "add", "--name", "CH Exemple", "--finess", "123456789", "--jwks", str(jwks),
                    "--scope", scope, *more)
    assert added.returncode == 0, added.stderr
    client_id = added.stdout.strip()
    assert added.stdout == client_id + "\n" and uuid.UUID(client_id), "stdout holds the client id alone"
    return client_id


def exchange(server: ServerProcess, client_id: str, key: Path, kid: str, scope: str,
             assertion: str | None = None) -> httpx.Response:
    token_url = f"{server.root_url}/auth/token"
    return httpx.post(token_url, timeout=30, data={
        "grant_type": "client_credentials", "scope": scope, "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion or client_assertion(client_id, token_url, key.read_bytes(), kid)})


def patients(server: ServerProcess, tag: str) -> int:
    """How many Patients the personalised adt_a28.hl7 of `tag` made."""
    found = server.get(f"{server.base_url}/Patient", params={"identifier": f"urn:oid:1.2.250.1.999.1.1.1|IPP{tag}-0099"})
    return int(found.json()["total"])


def eventually(check, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.2)


@pytest.mark.parametrize("kind", ["RSA", "EC"])
def test_a_registered_client_gets_a_token_and_uses_it(server: ServerProcess, tmp_path: Path, kind: str) -> None:
    key, jwks, kid = key_pair(tmp_path, kind)
    client_id = register(server, jwks, "system/Patient.cruds system/Observation.rs", "--role", "laboratory")
    response = exchange(server, client_id, key, kid, "system/Patient.cr system/Observation.rs system/Encounter.r")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["token_type"] == "bearer" and 0 < answer["expires_in"] <= 300
    # What the registration does not allow is not granted.
    assert answer["scope"] == "system/Patient.cr system/Observation.rs"
    access = answer["access_token"]
    got = jwt.decode(access, options={"verify_signature": False})
    assert (got["client_id"], got["SubjectOrganization"], got["role"]) == (client_id, "123456789", "laboratory")
    created = server.post(f"{server.base_url}/Patient", json={"resourceType": "Patient"},
                          headers={**bearer(access), "Content-Type": "application/fhir+json"})
    assert created.status_code == 201, created.text
    refused = server.get(f"{server.base_url}/Encounter", headers=bearer(access))
    assert refused.status_code == 403


def test_assertions_are_checked(server: ServerProcess, tmp_path: Path) -> None:
    key, jwks, kid = key_pair(tmp_path, "EC")
    client_id = register(server, jwks, "system/*.rs")
    token_url = f"{server.root_url}/auth/token"
    once = client_assertion(client_id, token_url, key.read_bytes(), kid)
    assert exchange(server, client_id, key, kid, "system/*.rs", once).status_code == 200
    replay = exchange(server, client_id, key, kid, "system/*.rs", once)
    assert replay.status_code == 401 and "used before" in replay.json()["error_description"]
    other_key, _, _ = key_pair(tmp_path, "EC")
    forged = exchange(server, client_id, other_key, kid, "system/*.rs")
    assert forged.status_code == 401 and forged.json()["error"] == "invalid_client"
    elsewhere = client_assertion(client_id, "https://elsewhere.example/auth/token", key.read_bytes(), kid)
    assert exchange(server, client_id, key, kid, "system/*.rs", elsewhere).status_code == 401
    unknown = exchange(server, str(uuid.uuid4()), key, kid, "system/*.rs")
    assert unknown.status_code == 401
    too_wide = exchange(server, client_id, key, kid, "system/*.cruds")
    assert too_wide.status_code == 400 and too_wide.json()["error"] == "invalid_scope"
    hs256 = jwt.encode({"iss": client_id, "sub": client_id, "aud": token_url, "exp": int(time.time()) + 60,
                        "jti": uuid.uuid4().hex}, "s" * 32, algorithm="HS256")
    assert exchange(server, client_id, key, kid, "system/*.rs", hs256).status_code == 401


def test_disabling_a_client_stops_its_tokens_and_its_mllp_sender(server: ServerProcess, tmp_path: Path) -> None:
    key, jwks, kid = key_pair(tmp_path, "RSA")
    client_id = register(server, jwks, "system/*.cruds", "--hl7-sender", "REGFAC")
    access = exchange(server, client_id, key, kid, "system/*.rs").json()["access_token"]
    assert server.get(f"{server.base_url}/Patient", params={"_count": 0}, headers=bearer(access)).status_code == 200
    tag = uuid.uuid4().hex[:8]
    message = personalised("adt_a28.hl7", tag).replace(b"|CHEXEMPLE|", b"|REGFAC|", 1)
    eventually(lambda: er7.parse(asyncio.run(mllp_send("127.0.0.1", server.mllp_port, message, 30))).text("MSA-1") == "AA")

    listed = clients(server, "list")
    assert listed.returncode == 0 and f"{client_id}\tactive\t123456789" in listed.stdout
    disabled = clients(server, "disable", client_id)
    assert disabled.returncode == 0, disabled.stderr
    eventually(lambda: server.get(f"{server.base_url}/Patient", headers=bearer(access)).status_code == 401)
    assert "disabled" in server.get(f"{server.base_url}/Patient", headers=bearer(access)).headers["www-authenticate"]
    assert f"{client_id}\tdisabled" in clients(server, "list").stdout
    assert exchange(server, client_id, key, kid, "system/*.rs").status_code == 401
    again = personalised("adt_a28.hl7", uuid.uuid4().hex[:8]).replace(b"|CHEXEMPLE|", b"|REGFAC|", 1)
    assert er7.parse(asyncio.run(mllp_send("127.0.0.1", server.mllp_port, again, 30))).text("MSA-1") == "AR"
    assert clients(server, "disable", str(uuid.uuid4())).returncode == 1


def test_unknown_mllp_senders_get_ar_and_nothing_is_stored(server: ServerProcess) -> None:
    tag = uuid.uuid4().hex[:8]
    before = server.get(f"{server.base_url}/_history", params={"_count": 1}).json().get("entry")
    ack = er7.parse(asyncio.run(mllp_send("127.0.0.1", server.mllp_port, personalised("adt_a28.hl7", tag), 30)))
    assert ack.text("MSA-1") == "AR" and ack.text("ERR-3.1") == "207"
    assert "CHEXEMPLE" in ack.text("ERR-8") and "not allowed" in ack.text("ERR-8")
    assert server.get(f"{server.base_url}/_history", params={"_count": 1}).json().get("entry") == before
    assert patients(server, tag) == 0
    listed = personalised("adt_a28.hl7", tag).replace(b"|CHEXEMPLE|", b"|LISTEDFAC|", 1)
    assert er7.parse(asyncio.run(mllp_send("127.0.0.1", server.mllp_port, listed, 30))).text("MSA-1") == "AA"
    assert patients(server, tag) == 1


def test_the_conformance_tool_gets_its_token_with_client_credentials(server: ServerProcess, tmp_path: Path) -> None:
    key, jwks, kid = key_pair(tmp_path, "EC")
    client_id = register(server, jwks, "system/*.cruds")
    result = subprocess.run(
        [sys.executable, "-m", "conformance", "--base-url", server.base_url, "--client-id", client_id,
         "--private-key", str(key), "--kid", kid, "--select", "FHIR-create-01,FHIR-read-01"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout
    refused = subprocess.run(
        [sys.executable, "-m", "conformance", "--base-url", server.base_url, "--client-id", str(uuid.uuid4()),
         "--private-key", str(key), "--select", "FHIR-read-01"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "invalid_client" in refused.stderr and "Traceback" not in refused.stderr


def test_an_assertion_whose_algorithm_does_not_fit_the_key_is_refused(server: ServerProcess, tmp_path: Path) -> None:
    key, jwks, kid = key_pair(tmp_path, "RSA")
    client_id = register(server, jwks, "system/*.rs")
    ec_key, _, _ = key_pair(tmp_path, "EC")
    token_url = f"{server.root_url}/auth/token"
    confused = client_assertion(client_id, token_url, ec_key.read_bytes(), kid)  # ES384 under the RSA key's kid
    response = exchange(server, client_id, key, kid, "system/*.rs", confused)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
