"""The built-in authorization server's signing keys: EC P-384 keys, tokens signed ES384.

The keys are generations of one name where the server's secrets live
(fhir_server.security.server_keys): 0600 PEM files in `<data dir>/keys/` with the embedded store,
`server_keys` documents with MONGODB_URL. The newest generation signs; every generation kept
verifies what it signed, and is published in the JWKS, until `fhir-server keys retire` removes it.
Each key is named by its RFC 7638 thumbprint (`kid`), the same in every process.

A running server reads the generations again every second and at once (at most four times a
second) when a token names a key it does not know, so a `keys rotate` or `keys retire` by the
command line reaches every worker without a restart. `fhir-server token` reads the same keys, so
what it mints the running server accepts.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from fhir_server.security.server_keys import Generation, ServerKeyError, add_generation, generations
from fhir_server.storage import leases

log = logging.getLogger("fhir_server")
SIGNING_KEY = "token-signing"
ALGORITHM = "ES384"
RELOAD_SECONDS = 1.0
# How soon a token naming an unknown key may make a process read the keys again: a rotation made
# a moment ago is found at once, and a stream of made-up kids costs at most a few reads a second.
UNKNOWN_KID_RELOAD_SECONDS = 0.25
# The longest a token of this server lives (`fhir-server token --ttl` at most). A key that stopped
# signing longer ago than this, plus the verifiers' leeway and a reload, signed no live token.
MAX_TOKEN_SECONDS = 24 * 3600
RETIRE_MARGIN_SECONDS = 60


def new_key() -> str:
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

    def __repr__(self) -> str:
        return f"ServerSigner(kid={self.kid})"  # never the key

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.private_key, algorithm=ALGORITHM, headers={"kid": self.kid})


def _thumbprint(jwk: dict[str, Any]) -> str:
    members = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class KeyRing:
    """The signing keys one process knows: `current` signs, `by_kid` verifies."""

    def __init__(self, load: Callable[[], Awaitable[list[Generation]]]) -> None:
        self._load = load
        self._parsed: dict[tuple[str, str], ServerSigner] = {}
        self.current: ServerSigner | None = None
        self.by_kid: dict[str, ServerSigner] = {}
        self._loaded_at = 0.0
        self._reloading = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def signer(self) -> ServerSigner:
        assert self.current is not None, "the key ring is loaded before use"
        return self.current

    async def reload(self) -> None:
        async with self._reloading:
            await self._reload()

    async def _reload(self) -> None:
        kept = await self._load()
        if not kept:
            raise ServerKeyError("no token signing key is kept: rotate one in with fhir-server keys rotate")
        # Parsed once per generation: a reload that finds nothing new parses nothing.
        parsed = {(g.name, g.text): self._parsed.get((g.name, g.text)) or ServerSigner(g.text) for g in kept}
        self._parsed = parsed
        ordered = list(parsed.values())
        self.by_kid = {signer.kid: signer for signer in ordered}
        self.current = ordered[-1]
        self._loaded_at = time.monotonic()

    async def _reload_or_keep(self) -> None:
        """Read the keys again; if they cannot be read (store down, a damaged file), the keys
        known go on serving and the operator is told."""
        try:
            await self._reload()
        except (PyMongoError, OSError, ServerKeyError, ValueError, TypeError) as exc:
            self._loaded_at = time.monotonic()  # not again at once for every unknown kid
            log.warning("cannot reload the token signing keys (the ones known still serve): %s", exc)

    async def public_key(self, kid: str) -> Any:
        """The public key of `kid`, or None; an unknown kid reads the keys again (rate-limited)."""
        signer = self.by_kid.get(kid)
        if signer is None:
            async with self._reloading:
                # Checked under the lock: of many requests naming unknown kids at once, one reads.
                if time.monotonic() - self._loaded_at >= UNKNOWN_KID_RELOAD_SECONDS:
                    await self._reload_or_keep()
            signer = self.by_kid.get(kid)
        return signer.private_key.public_key() if signer is not None else None

    def jwks(self) -> dict[str, Any]:
        """Every key kept, the one signing now first."""
        return {"keys": [signer.public_jwk for signer in reversed(self.by_kid.values())]}

    def start(self) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(RELOAD_SECONDS)
                async with self._reloading:
                    await self._reload_or_keep()

        self._task = asyncio.create_task(loop())

    async def stop(self) -> None:
        await leases.cancel(self._task)


async def key_ring(*, data_dir: Path | None, db: AsyncDatabase[dict[str, Any]] | None) -> KeyRing:
    """The signing keys of the deployment, the first one made if none is kept yet."""
    await add_generation(SIGNING_KEY, new_key, data_dir=data_dir, db=db, first_only=True)
    ring = KeyRing(partial(generations, SIGNING_KEY, data_dir=data_dir, db=db))
    await ring.reload()
    return ring


def retirable_from(kept: list[Generation], name: str) -> float | None:
    """When generation `name` signed its last token's end of life (epoch seconds); None while it
    signs (the newest generation is never retired)."""
    later = [g for g in kept if g.number > next(g.number for g in kept if g.name == name)]
    if not later:
        return None
    return later[0].created + MAX_TOKEN_SECONDS + RETIRE_MARGIN_SECONDS
