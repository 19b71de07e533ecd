"""A bearer token for the conformance run: given, or obtained with SMART Backend Services.

With a client id and its private key (PEM, RSA or EC P-384), the runner reads the server's
`.well-known/smart-configuration`, signs a `private_key_jwt` assertion (RS384 or ES384) and asks
the token endpoint for a client_credentials token, as a hospital system would.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def client_assertion(client_id: str, token_url: str, pem: bytes, kid: str | None = None) -> str:
    key = serialization.load_pem_private_key(pem, password=None)
    algorithm = "ES384" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS384"
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "exp": now + 240, "iat": now,
              "jti": uuid.uuid4().hex}
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid} if kid else None)  # type: ignore[arg-type]


def client_credentials_token(base_url: str, client_id: str, key_file: Path, scope: str, kid: str | None = None) -> str:
    """An access token for `scope`; RuntimeError says why the server refused."""
    discovery = httpx.get(f"{base_url.rstrip('/')}/.well-known/smart-configuration", timeout=30).json()
    token_url = discovery["token_endpoint"]
    answer = httpx.post(token_url, timeout=30, data={
        "grant_type": "client_credentials", "scope": scope, "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(client_id, token_url, key_file.read_bytes(), kid)})
    if answer.status_code != 200:
        raise RuntimeError(f"the token endpoint refused ({answer.status_code}): {answer.text}")
    return str(answer.json()["access_token"])
