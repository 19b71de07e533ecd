"""The built-in authorization server's signing key: an EC P-384 key, tokens signed ES384.

Made on first start where the server's secrets live (fhir_server.security.server_keys): a 0600
PEM file in the data dir with the embedded store, a `server_keys` document with MONGODB_URL.
`fhir-server token` reads the same key, so what it mints the running server accepts.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pymongo.asynchronous.database import AsyncDatabase

from fhir_server.security.server_keys import server_text

SIGNING_KEY = "token-signing"
ALGORITHM = "ES384"


def _new_key() -> str:
    key = ec.generate_private_key(ec.SECP384R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


class ServerSigner:
    def __init__(self, pem: str) -> None:
        self.private_key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
        public = jwt.algorithms.ECAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        # RFC 7638 thumbprint as key id: the same key gives the same kid in every process.
        self.kid = _thumbprint(public)
        self.public_jwk: dict[str, Any] = {**public, "kid": self.kid, "use": "sig", "alg": ALGORITHM}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.private_key, algorithm=ALGORITHM, headers={"kid": self.kid})

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}


def _thumbprint(jwk: dict[str, Any]) -> str:
    members = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def server_signer(*, data_dir: Path | None, db: AsyncDatabase[dict[str, Any]] | None) -> ServerSigner:
    return ServerSigner(await server_text(SIGNING_KEY, _new_key, data_dir=data_dir, db=db))
