"""Registered clients of the built-in authorization server (SMART Backend Services).

A client is a system of an organisation (FINESS): its public keys (JWKS) verify the
`private_key_jwt` assertions it authenticates with, its scopes bound what it may be granted, its
HL7 v2 sending facilities (MSH-4, or MSH-3^MSH-4) may send over MLLP. The `clients` collection
holds them; the running server reloads them every second, so a client disabled from the command
line (another process) is refused within that second, tokens it already holds included.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from fhir_server.security.tokens import jwks_keys
from fhir_server.storage import leases
from fhir_server.timefmt import now_instant

log = logging.getLogger("fhir_server")
CLIENTS = "clients"
# client_assertion jti values seen, kept past the assertion's expiry so a replay is refused.
ASSERTIONS = "client_assertions"
REFRESH_SECONDS = 1.0


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    finess: str
    scope: str
    jwks: dict[str, Any]
    hl7_senders: tuple[str, ...] = ()
    role: str | None = None
    disabled: bool = False

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Client:
        return cls(document["_id"], document.get("name", ""), document.get("finess", ""), document.get("scope", ""),
                   document.get("jwks") or {}, tuple(document.get("hl7_senders") or ()), document.get("role"),
                   bool(document.get("disabled")))


def new_client(name: str, finess: str, jwks: dict[str, Any], scope: str, hl7_senders: list[str],
               role: str | None) -> dict[str, Any]:
    """The document of a new client; ValueError when its JWKS holds no RS384/ES384-capable key."""
    if not (len(finess) == 9 and finess.isalnum()):
        raise ValueError(f"FINESS {finess!r} is not 9 characters")
    jwks_keys(jwks)
    return {"_id": str(uuid.uuid4()), "name": name, "finess": finess, "jwks": jwks, "scope": scope,
            "hl7_senders": hl7_senders, "role": role, "disabled": False, "created": now_instant()}


async def find_client(db: AsyncDatabase[dict[str, Any]], client_id: str) -> Client | None:
    document = await db[CLIENTS].find_one({"_id": client_id})
    return Client.from_document(document) if document else None


async def remember_assertion(db: AsyncDatabase[dict[str, Any]], client_id: str, jti: str, expires: int) -> bool:
    """Record an assertion's jti; False when it was seen before (a replay). Assertions past their
    expiry (with the verifier's leeway) are refused anyway, so their jti need not be kept."""
    await db[ASSERTIONS].delete_many({"expires": {"$lt": int(time.time()) - 120}})
    try:
        await db[ASSERTIONS].insert_one({"_id": f"{client_id} {jti}", "expires": expires})
    except DuplicateKeyError:
        return False
    return True


@dataclass
class ClientRegistry:
    """What the running server knows of its clients, refreshed every second from the store."""

    db: AsyncDatabase[dict[str, Any]]
    # Shared with the token verifier (fhir_server.security.tokens.TokenVerifier.disabled_clients).
    disabled: set[str] = field(default_factory=set)
    by_sender: dict[str, Client] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        disabled: set[str] = set()
        senders: dict[str, Client] = {}
        async for document in self.db[CLIENTS].find({}, {"jwks": 0}):
            client = Client.from_document(document)
            if client.disabled:
                disabled.add(client.client_id)
            else:
                for sender in client.hl7_senders:
                    senders[sender] = client
        # Updated in place: the verifier holds this very set.
        self.disabled.intersection_update(disabled)
        self.disabled.update(disabled)
        self.by_sender = senders

    async def start(self) -> None:
        await self.refresh()
        self._task = leases.reloading(REFRESH_SECONDS, self.refresh, log, "the registered clients")

    async def stop(self) -> None:
        await leases.cancel(self._task)
