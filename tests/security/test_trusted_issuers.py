"""Tokens of other issuers (FHIR_TRUSTED_ISSUERS): Pro Santé Connect's claim shape becomes a
practitioner; the verifier's cache answers only while a token is valid and for its audience."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhir_server.security import tokens as token_module
from fhir_server.security.server_keys import Generation
from fhir_server.security.signing import KeyRing, new_key
from fhir_server.security.tokens import InvalidToken, TokenVerifier, trusted_issuers
from tests.security.tokens import bearer
from tests.server_process import ServerProcess

ISSUER = "https://psc.example/auth/realms/esante-wallet"
BASE = "https://fhir.example/fhir"


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An identity provider of the test: an RSA key and its JWKS file."""
    key = rsa.generate_private_key(65537, 2048)
    public = {**jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "psc-1", "use": "sig"}
    jwks = tmp_path_factory.mktemp("idp") / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public]}), encoding="utf-8")
    return {"key": key, "jwks": jwks}


def psc_token(idp: dict[str, Any], audience: str, **changes: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "f:550dc1c8:810001234567", "aud": audience, "iat": now, "exp": now + 300,
              "SubjectNameID": "810001234567", "SubjectRole": ["10^1.2.250.1.213.1.1.5.5"],
              "SubjectOrganization": "750000001", "scope": "openid user/Patient.rs", **changes}
    return jwt.encode(claims, idp["key"], algorithm="RS256", headers={"kid": changes.pop("kid", "psc-1")})


def verifier(idp: dict[str, Any], kind: str | None = "practitioner", **options: Any) -> TokenVerifier:
    config = json.dumps([{"issuer": ISSUER, "jwks": str(idp["jwks"]), **({"kind": kind} if kind else {})}])
    return TokenVerifier(own_keys(), trusted_issuers(config), configured_base=None, disabled_clients=set(), **options)


def own_keys() -> KeyRing:
    """The server's own keys, never used here: these tokens are the trusted issuer's."""
    kept = [Generation("token-signing", 1, new_key(), time.time())]

    async def load() -> list[Generation]:
        return kept

    keys = KeyRing(load)
    asyncio.run(keys.reload())
    return keys


def test_pro_sante_connect_claims_become_a_practitioner(idp: dict[str, Any]) -> None:
    caller = asyncio.run(verifier(idp).verify(psc_token(idp, BASE), BASE))
    assert (caller.kind, caller.idnatps, caller.profession, caller.organization) == (
        "practitioner", "810001234567", "10", "750000001")
    assert [str(s.resource_type) for s in caller.scopes.resource] == ["Patient"]


def test_an_issuer_cannot_make_itself_the_platform(idp: dict[str, Any]) -> None:
    claimed = psc_token(idp, BASE, caller_kind="platform", scope="system/*.cruds")
    assert asyncio.run(verifier(idp).verify(claimed, BASE)).kind == "practitioner"
    with pytest.raises(InvalidToken):
        asyncio.run(verifier(idp, kind=None).verify(claimed, BASE))


def test_unknown_keys_and_malformed_configuration_are_refused(idp: dict[str, Any]) -> None:
    other = jwt.encode({"iss": ISSUER, "aud": BASE, "exp": int(time.time()) + 60, "SubjectNameID": "810001234567"},
                       rsa.generate_private_key(65537, 2048), algorithm="RS256", headers={"kid": "psc-2"})
    with pytest.raises(InvalidToken, match="key"):
        asyncio.run(verifier(idp).verify(other, BASE))
    for wrong in ("https://a.example", '[{"issuer": "x", "jwks": "y", "kind": "king"}]'):
        with pytest.raises(ValueError):
            trusted_issuers(wrong)
    assert [i.issuer for i in trusted_issuers(f"{ISSUER}={idp['jwks']}")] == [ISSUER]


def test_the_cache_answers_only_while_valid_and_for_its_audience(idp: dict[str, Any],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    checker = verifier(idp)
    token = psc_token(idp, [BASE, "https://other.example/fhir"])  # type: ignore[arg-type]
    asyncio.run(checker.verify(token, BASE))
    assert checker.cached(token, BASE) is not None
    assert checker.cached(token, "https://other.example/fhir") is not None
    with pytest.raises(InvalidToken, match="audience"):
        checker.cached(token, "https://third.example/fhir")
    later = time.time() + 3600
    monkeypatch.setattr(token_module.time, "time", lambda: later)
    with pytest.raises(InvalidToken, match="expired"):
        checker.cached(token, BASE)


def test_the_cache_is_bounded(idp: dict[str, Any]) -> None:
    checker = verifier(idp, max_entries=4)
    seen = [psc_token(idp, BASE, jti=uuid.uuid4().hex) for _ in range(10)]
    for token in seen:
        asyncio.run(checker.verify(token, BASE))
    assert len(checker._verified) <= 4 and checker.cached(seen[-1], BASE) is not None
    assert checker.cached(seen[0], BASE) is None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, idp: dict[str, Any]) -> Iterator[ServerProcess]:
    config = json.dumps([{"issuer": ISSUER, "jwks": str(idp["jwks"]), "kind": "practitioner"}])
    process = ServerProcess(tmp_path_factory.mktemp("issuers") / "data", env={"FHIR_TRUSTED_ISSUERS": config}).start()
    yield process
    process.stop()


def test_a_trusted_issuers_token_works_over_http(server: ServerProcess, idp: dict[str, Any]) -> None:
    token = psc_token(idp, server.base_url)
    assert server.get(f"{server.base_url}/Patient", headers=bearer(token)).status_code == 200
    refused = server.post(f"{server.base_url}/Patient", json={"resourceType": "Patient"},
                          headers={**bearer(token), "Content-Type": "application/fhir+json"})
    assert refused.status_code == 403
    forged = jwt.encode(jwt.decode(token, options={"verify_signature": False}), ec.generate_private_key(ec.SECP384R1()),
                        algorithm="ES384", headers={"kid": "psc-1"})
    assert server.get(f"{server.base_url}/Patient", headers=bearer(forged)).status_code == 401


def test_key_files_are_kept_private(server: ServerProcess) -> None:
    key = Path(server.data_dir) / "keys" / "token-signing.pem"
    assert key.stat().st_mode & 0o777 == 0o600
