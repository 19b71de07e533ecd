"""`fhir-server token`, `clients` and `keys`: the built-in authorization server from the command line.

`token` prints a signed bearer token and nothing else; it reads only the server's signing keys (the
first made if the server never started), so it works whether or not the server runs. `keys`
rotates and retires the signing keys where the server keeps them (fhir_server.security.signing),
holding the data dir's writer gate like every other writer; running servers follow within a second. `clients` writes the
registered clients into the store: the server's own embedded store while it runs (through the
cross-process gate of the data dir, DECISIONS "Processes and the embedded store"), a store it
starts when no server runs, or MongoDB at MONGODB_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import datetime, timezone
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fhir_server.config import Settings
from fhir_server.security.callers import idnatps
from fhir_server.security.clients import CLIENTS, Client, new_client
from fhir_server.security.minting import mint
from fhir_server.security.scopes import Scopes
from fhir_server.security.server_keys import Generation, ServerKeyError, add_generation, generations, remove_generation
from fhir_server.security.signing import (MAX_TOKEN_SECONDS, SIGNING_KEY, ServerSigner, key_ring, new_key,
                                          retirable_from)
from fhir_server.security.tokens import default_scopes
from fhir_server.storage.database import Database
from fhir_server.storage.embedded import StoreUnavailable, store_beside_server
from fhir_server.storage.gate import Gate
from fhir_server.timefmt import format_instant

DEFAULT_TTL = 3600
DEFAULT_AUDIENCE = "http://127.0.0.1:8080/fhir"


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    parser.add_argument("--data-dir", type=Path, default=default(Path("./data")), help="the server's data dir")
    parser.add_argument("--scope", default=default(None), help="space-separated SMART scopes (default: the kind's)")
    parser.add_argument("--ttl", type=int, default=default(DEFAULT_TTL),
                        help=f"lifetime in seconds (at most {MAX_TOKEN_SECONDS})")
    parser.add_argument("--audience", default=default(None),
                        help=f"the FHIR base URL the token is for (default: FHIR_BASE_URL or {DEFAULT_AUDIENCE})")


def add_arguments(commands: Any) -> None:
    token = commands.add_parser("token", help="print a bearer token signed by the server's own key")
    _common(token, suppress=False)
    kinds = token.add_subparsers(dest="kind", required=True)
    patient = kinds.add_parser("patient", help="a patient, by INS")
    patient.add_argument("--ins", required=True)
    patient.add_argument("--patient", help="the Patient id of the launch context")
    practitioner = kinds.add_parser("practitioner", help="a health professional, by RPPS or IdNatPs")
    practitioner.add_argument("--rpps", required=True, help="11-digit RPPS, or 12-digit IdNatPs starting with 8")
    practitioner.add_argument("--profession", required=True, help="TRE_G15 profession code (e.g. 10, physician)")
    practitioner.add_argument("--organization", help="FINESS of the practitioner's structure")
    practitioner.add_argument("--purpose", help="purpose of use, e.g. BTG for emergency access")
    practitioner.add_argument("--patient", help="the Patient id of the launch context (for patient/ scopes)")
    system = kinds.add_parser("system", help="a system of an organisation (prefer the token endpoint)")
    system.add_argument("--client-id")
    system.add_argument("--organization", help="FINESS of the system's organisation")
    system.add_argument("--role", help="what the system is for, e.g. insurer")
    kinds.add_parser("admin", help="an operator: client registration, enrolment; no clinical content")
    kinds.add_parser("platform", help="the platform itself: full access (migrations, tests)")
    for sub in kinds.choices.values():
        _common(sub, suppress=True)

    clients = commands.add_parser("clients", help="registered clients of the built-in authorization server")
    actions = clients.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="register a client; prints its client id")
    add.add_argument("--name", required=True)
    add.add_argument("--finess", required=True, help="FINESS of the client's organisation")
    add.add_argument("--jwks", type=Path, required=True, help="file holding the client's public keys (JWKS)")
    add.add_argument("--scope", required=True, help="the SMART scopes it may be granted, space-separated")
    add.add_argument("--hl7-sender", action="append", default=[],
                     help="an HL7 v2 sending facility (MSH-4, or MSH-3^MSH-4) it sends over MLLP (repeatable)")
    add.add_argument("--role", help="what the client is for, e.g. insurer")
    actions.add_parser("list", help="the registered clients, one per line")
    disable = actions.add_parser("disable", help="disable a client: its tokens stop working at once")
    disable.add_argument("client_id")
    for sub in actions.choices.values():
        sub.add_argument("--data-dir", type=Path, default=Path("./data"), help="the server's data dir")

    keys = commands.add_parser("keys", help="the server's token signing keys (JWKS at /auth/jwks)")
    key_actions = keys.add_subparsers(dest="action", required=True)
    key_actions.add_parser("list", help="the keys kept, one per line: kid, state, made, retirable from")
    key_actions.add_parser("rotate", help="make a new key that signs from now on; prints its kid")
    retire = key_actions.add_parser("retire", help="remove a key that no longer signs: what it signed is refused")
    retire.add_argument("kid", help='as `keys list` shows it; a kid beginning with "-" (base64url) goes after "--": '
                        'fhir-server keys retire -- -Abc...')
    retire.add_argument("--force", action="store_true",
                        help="retire it even if tokens it signed may still be alive (a compromised key)")
    for sub in key_actions.choices.values():
        sub.add_argument("--data-dir", type=Path, default=Path("./data"), help="the server's data dir")


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    """The deployment's store: MONGODB_URL, the running server's embedded store, or one started here."""
    with store_beside_server(settings.data_dir, settings.mongodb_url) as url:
        database = Database(url, settings.database, data_dir=settings.data_dir)
        try:
            await database.connect()
            yield database
        finally:
            await database.close()


async def _signer(settings: Settings) -> ServerSigner:
    if not settings.mongodb_url:
        return (await key_ring(data_dir=settings.data_dir, db=None)).signer
    async with _database(settings) as database:
        embedded = database.capabilities.embedded
        return (await key_ring(data_dir=settings.data_dir if embedded else None, db=database.db)).signer


def _identity(args: argparse.Namespace) -> tuple[str, dict[str, str | None]]:
    """The token's subject and caller fields; ValueError says what is missing or wrong."""
    if args.kind == "patient":
        return args.ins, {"ins": args.ins, "patient": args.patient}
    if args.kind == "practitioner":
        number = idnatps(args.rpps)
        return number, {"idnatps": number, "profession": args.profession, "organization": args.organization,
                        "purpose_of_use": args.purpose, "patient": args.patient}
    if args.kind == "system":
        if not args.client_id and not args.organization:
            raise ValueError("token system needs --organization FINESS or --client-id ID; "
                             "for the platform's own full-access token use: fhir-server token platform")
        return args.client_id or args.organization, {"client_id": args.client_id, "organization": args.organization,
                                                     "role": args.role}
    return args.kind, {}


def token(args: argparse.Namespace) -> int:
    try:
        subject, identity = _identity(args)
        scope = args.scope if args.scope is not None else default_scopes(args.kind)
        Scopes.parse(scope)
        if not 0 < args.ttl <= MAX_TOKEN_SECONDS:
            # The bound is what lets `keys retire` know when a key's tokens are all dead.
            raise ValueError(f"--ttl must be between 1 and {MAX_TOKEN_SECONDS} seconds")
    except ValueError as exc:
        print(f"fhir-server token: {exc}", file=sys.stderr)
        return 2
    audience = (args.audience or os.environ.get("FHIR_BASE_URL") or DEFAULT_AUDIENCE).rstrip("/")
    settings = Settings(data_dir=args.data_dir)
    try:
        signer = asyncio.run(_signer(settings))
    except (StoreUnavailable, OSError) as exc:
        print(f"fhir-server token: cannot read the server's signing key: {exc}", file=sys.stderr)
        return 1
    print(mint(signer, kind=args.kind, audience=audience, ttl=args.ttl, scope=scope, subject=subject,
               identity=identity))
    return 0


async def _add(database: Database, args: argparse.Namespace) -> str:
    document = new_client(args.name, args.finess, json.loads(args.jwks.read_text(encoding="utf-8")), args.scope,
                          args.hl7_sender, args.role)
    async with database.gate.write(exclude_readers=False):
        await database.db[CLIENTS].insert_one(document)
    return str(document["_id"])


async def _list(database: Database, args: argparse.Namespace) -> str:
    lines = []
    async for document in database.db[CLIENTS].find({}, {"jwks": 0}).sort("created", 1):
        client = Client.from_document(document)
        state = "disabled" if client.disabled else "active"
        senders = ",".join(client.hl7_senders) or "-"
        lines.append(f"{client.client_id}\t{state}\t{client.finess}\t{client.role or '-'}\t{senders}\t"
                     f"{client.name}\t{client.scope}")
    return "\n".join(lines)


async def _disable(database: Database, args: argparse.Namespace) -> str:
    async with database.gate.write(exclude_readers=False):
        result = await database.db[CLIENTS].update_one({"_id": args.client_id}, {"$set": {"disabled": True}})
    if result.matched_count == 0:
        raise ValueError(f"no client {args.client_id}")
    return f"{args.client_id} disabled"


ACTIONS: dict[str, Callable[[Database, argparse.Namespace], Awaitable[str]]] = {
    "add": _add, "list": _list, "disable": _disable}


def clients(args: argparse.Namespace) -> int:
    async def run() -> str:
        async with _database(Settings(data_dir=args.data_dir)) as database:
            return await ACTIONS[args.action](database, args)

    try:
        if args.action == "add":
            Scopes.parse(args.scope)
        output = asyncio.run(run())
    except (ValueError, OSError, StoreUnavailable) as exc:
        print(f"fhir-server clients {args.action}: {exc}", file=sys.stderr)
        return 1
    if output:
        print(output)
    return 0



KeyAction = Callable[[argparse.Namespace, Path | None, Any], Awaitable[str]]


async def _key_list(args: argparse.Namespace, data_dir: Path | None, db: Any) -> str:
    kept = await generations(SIGNING_KEY, data_dir=data_dir, db=db)
    lines = []
    for generation in kept:
        until = retirable_from(kept, generation.name)
        state = "signing" if until is None else f"verifying\tretirable from {_instant(until)}"
        lines.append(f"{ServerSigner(generation.text).kid}\t{_instant(generation.created)}\t{state}")
    return "\n".join(lines)


async def _rotate(args: argparse.Namespace, data_dir: Path | None, db: Any) -> str:
    await add_generation(SIGNING_KEY, new_key, data_dir=data_dir, db=db)
    kept = await generations(SIGNING_KEY, data_dir=data_dir, db=db)
    return ServerSigner(kept[-1].text).kid


async def _retire(args: argparse.Namespace, data_dir: Path | None, db: Any) -> str:
    kept = await generations(SIGNING_KEY, data_dir=data_dir, db=db)
    chosen: Generation | None = next((g for g in kept if ServerSigner(g.text).kid == args.kid), None)
    if chosen is None:
        raise ValueError(f"no signing key {args.kid} (fhir-server keys list shows them)")
    until = retirable_from(kept, chosen.name)
    if until is None:
        raise ValueError(f"{args.kid} signs now: rotate first (fhir-server keys rotate), retire it later")
    if until > time.time() and not args.force:
        raise ValueError(f"tokens signed by {args.kid} may live until {_instant(until)}; retire it then, "
                         "or now with --force (those tokens are then refused)")
    await remove_generation(SIGNING_KEY, chosen.name, data_dir=data_dir, db=db)
    return f"{args.kid} retired"


def _instant(epoch: float) -> str:
    return format_instant(datetime.fromtimestamp(epoch, timezone.utc))


KEY_ACTIONS: dict[str, KeyAction] = {"list": _key_list, "rotate": _rotate, "retire": _retire}


def keys(args: argparse.Namespace) -> int:
    """With the embedded store the keys are files of the data dir, written under its writer gate
    (no store needed); with MONGODB_URL they are documents of the store."""
    settings = Settings(data_dir=args.data_dir)
    action = KEY_ACTIONS[args.action]

    async def run() -> str:
        if not settings.mongodb_url:
            gate = Gate(enabled=True, lock_dir=settings.data_dir)
            async with gate.write(exclude_readers=False):
                return await action(args, settings.data_dir, None)
        async with _database(settings) as database:
            embedded = database.capabilities.embedded
            async with database.gate.write(exclude_readers=False):
                return await action(args, settings.data_dir if embedded else None, database.db)

    try:
        output = asyncio.run(run())
    except (ValueError, OSError, StoreUnavailable, ServerKeyError) as exc:
        print(f"fhir-server keys {args.action}: {exc}", file=sys.stderr)
        return 1
    if output:
        print(output)
    return 0
