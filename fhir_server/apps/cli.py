"""`fhir-server apps`: the catalogue's registry from the command line, and the trial sign-in's codes.

Writes go to the deployment's store under the data dir's writer gate, whether or not the server
runs (DECISIONS, "Processes and the embedded store"); running servers follow within a second
(fhir_server.apps.registry): a suspended or withdrawn app's tokens are refused from then on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fhir_server.apps.registry import APPS, App, new_app
from fhir_server.apps.signin import issue_code, well_formed_ins
from fhir_server.config import Settings
from fhir_server.security.cli import _database as deployment_database
from fhir_server.storage.database import Database
from fhir_server.storage.embedded import StoreUnavailable
from fhir_server.timefmt import now_instant


def add_arguments(commands: Any) -> None:
    apps = commands.add_parser("apps", help="the catalogue of referenced apps (SMART App Launch clients)")
    actions = apps.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="register and reference an app; prints its client id")
    add.add_argument("--name", required=True)
    add.add_argument("--publisher", required=True, help="who publishes it")
    add.add_argument("--description", default="", help="what it does, for the catalogue (French)")
    add.add_argument("--category", default="", help="its category in the catalogue, e.g. 'Suivi du diabète'")
    add.add_argument("--redirect-uri", action="append", default=[],
                     help="a URI the app may be sent back to, compared exactly (repeatable)")
    add.add_argument("--scope", default="",
                     help="the scopes it may ask for, space-separated (patient/ scopes, launch/patient, "
                          "openid, fhirUser, offline_access, online_access)")
    keys = add.add_mutually_exclusive_group(required=True)
    keys.add_argument("--jwks", type=Path, help="file of its public keys: a confidential client (private_key_jwt)")
    keys.add_argument("--public", action="store_true", help="a public client (PKCE only, no secret)")
    add.add_argument("--listed-only", action="store_true",
                     help="listed in the catalogue, but may not connect to a record")
    actions.add_parser("list", help="the registered apps, one per line")
    for verb, what in (("suspend", "suspend an app's referencing"), ("withdraw", "withdraw an app's referencing"),
                       ("reference", "reference an app again")):
        sub = actions.add_parser(verb, help=f"{what}: takes effect at once, its tokens included")
        sub.add_argument("client_id")
    code = actions.add_parser("signin-code", help="print a one-time code for the trial sign-in (FHIR_TRIAL_SIGNIN=1)")
    code.add_argument("--ins", required=True, help="the patient's INS")
    for sub in actions.choices.values():
        sub.add_argument("--data-dir", type=Path, default=Path("./data"), help="the server's data dir")


ALLOWED_SCOPES = ("launch/patient", "openid", "fhirUser", "offline_access", "online_access")


def _app_scope(scope: str) -> str:
    """An app acts for a patient: patient/ scopes and the launch and identity scopes only."""
    for word in scope.split():
        if not word.startswith("patient/") and word not in ALLOWED_SCOPES:
            raise ValueError(f"scope {word!r}: an app may ask for patient/ scopes and {', '.join(ALLOWED_SCOPES)} only")
    return scope


async def _add(database: Database, args: argparse.Namespace) -> str:
    jwks = json.loads(args.jwks.read_text(encoding="utf-8")) if args.jwks else None
    document = new_app(name=args.name, publisher=args.publisher, description=args.description, category=args.category,
                       redirect_uris=args.redirect_uri, scope=_app_scope(args.scope), jwks=jwks,
                       exchange=not args.listed_only)
    async with database.gate.write(exclude_readers=False):
        await database.db[APPS].insert_one(document)
    return str(document["_id"])


async def _list(database: Database, args: argparse.Namespace) -> str:
    lines = []
    async for document in database.db[APPS].find({}).sort("created", 1):
        app = App.from_document(document)
        kind = "public" if app.public else "confidential"
        uses = "exchange" if app.exchange else "listed-only"
        lines.append(f"{app.client_id}\t{app.status}\t{app.status_date}\t{kind}\t{uses}\t{app.name}\t"
                     f"{app.publisher}\t{app.scope}\t{' '.join(app.redirect_uris)}")
    return "\n".join(lines)


def _set_status(status: str) -> Callable[[Database, argparse.Namespace], Awaitable[str]]:
    async def change(database: Database, args: argparse.Namespace) -> str:
        async with database.gate.write(exclude_readers=False):
            done = await database.db[APPS].update_one(
                {"_id": args.client_id}, {"$set": {"status": status, "status_date": now_instant()[:10]}})
        if done.matched_count == 0:
            raise ValueError(f"no app {args.client_id}")
        return f"{args.client_id} {status}"

    return change


async def _signin_code(database: Database, args: argparse.Namespace) -> str:
    if not well_formed_ins(args.ins):
        raise ValueError(f"{args.ins!r} is not an INS")
    async with database.gate.write(exclude_readers=False):
        return await issue_code(database.db, args.ins)


ACTIONS: dict[str, Callable[[Database, argparse.Namespace], Awaitable[str]]] = {
    "add": _add, "list": _list, "suspend": _set_status("suspended"), "withdraw": _set_status("withdrawn"),
    "reference": _set_status("referenced"), "signin-code": _signin_code}


def run(args: argparse.Namespace) -> int:
    async def go() -> str:
        async with deployment_database(Settings(data_dir=args.data_dir)) as database:
            return await ACTIONS[args.action](database, args)

    try:
        output = asyncio.run(go())
    except (ValueError, OSError, StoreUnavailable) as exc:
        print(f"fhir-server apps {args.action}: {exc}", file=sys.stderr)
        return 1
    if output:
        print(output)
    return 0
