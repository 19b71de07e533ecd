"""`fhir-server token` and `fhir-server clients`: the built-in authorization server from the command line.

`token` prints a signed bearer token and nothing else; it reads only the server's signing key (made
if the server never started), so it works whether or not the server runs. `clients` writes the
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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fhir_server.config import Settings
from fhir_server.security.callers import idnatps
from fhir_server.security.clients import CLIENTS, Client, new_client
from fhir_server.security.minting import mint
from fhir_server.security.scopes import Scopes
from fhir_server.security.signing import ServerSigner, server_signer
from fhir_server.security.tokens import default_scopes
from fhir_server.storage.database import Database
from fhir_server.storage.embedded import StoreUnavailable, store_beside_server

DEFAULT_TTL = 3600
DEFAULT_AUDIENCE = "http://127.0.0.1:8080/fhir"


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    parser.add_argument("--data-dir", type=Path, default=default(Path("./data")), help="the server's data dir")
    parser.add_argument("--scope", default=default(None), help="space-separated SMART scopes (default: the kind's)")
    parser.add_argument("--ttl", type=int, default=default(DEFAULT_TTL), help="lifetime in seconds")
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
        return await server_signer(data_dir=settings.data_dir, db=None)
    async with _database(settings) as database:
        embedded = database.capabilities.embedded
        return await server_signer(data_dir=settings.data_dir if embedded else None, db=database.db)


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
        if args.ttl <= 0:
            raise ValueError("--ttl must be a positive number of seconds")
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

