"""Tokens for tests: minted with the server's own key, or forged in the ways a test needs."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from fhir_server.security.signing import ServerSigner
from fhir_server.security.tokens import own_issuer
from tests.server_process import ServerProcess, server_token, signing_key


def signer(server: ServerProcess) -> ServerSigner:
    return signing_key(server.data_dir)


def claims(server: ServerProcess, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": own_issuer(server.base_url), "sub": "test", "aud": server.base_url, "iat": now, "nbf": now,
            "exp": now + 600, "jti": uuid.uuid4().hex, "caller_kind": "platform", "scope": "system/*.cruds"}
    return {**base, **changes}


def signed(server: ServerProcess, **changes: Any) -> str:
    """A token of the server's own key with these claims changed."""
    return signer(server).sign(claims(server, **changes))


def wrong_tokens(server: ServerProcess) -> dict[str, str]:
    """Tokens the server must refuse with 401, by what is wrong with them."""
    other_key = ec.generate_private_key(ec.SECP384R1())
    return {
        "not a JWT": "not-a-jwt",
        "bad signature": jwt.encode(claims(server), other_key, algorithm="ES384", headers={"kid": signer(server).kid}),
        "expired": signed(server, exp=int(time.time()) - 3600, nbf=int(time.time()) - 7200),
        "not yet valid": signed(server, nbf=int(time.time()) + 3600),
        "wrong audience": signed(server, aud="https://other-server.example/fhir"),
        "unknown issuer": signed(server, iss="https://unknown-idp.example/auth"),
        "patient scope without patient": server_token(server.data_dir, server.base_url, "practitioner",
                                                      scope="patient/*.rs", idnatps="810001234567", profession="10"),
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def system_token(server: ServerProcess, scope: str, **identity: str | None) -> str:
    return server_token(server.data_dir, server.base_url, "system", scope=scope,
                        **({"organization": "999000001"} | identity))
