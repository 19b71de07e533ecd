"""`fhir-server status --data-dir DIR`: how many records are in each lifecycle status, read from
the store the server uses (MONGODB_URL, the running server's embedded store through the gate's
file locks, or one started here). Over HTTP the same counts are
`GET [base]/Patient?record-status=CODE&_summary=count` (docs/ACCESS-RULES.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from pymongo.errors import PyMongoError

from fhir_server.access.records import RULES_KEY, STATUSES
from fhir_server.config import Settings
from fhir_server.security.cli import _database as deployment_database
from fhir_server.storage.embedded import StoreUnavailable


def add_arguments(commands: Any) -> None:
    status = commands.add_parser("status", help="count the records by lifecycle status")
    status.add_argument("--data-dir", type=Path, default=Path("./data"), help="the server's data dir")
    status.add_argument("--json", action="store_true", help="print the counts as one JSON object")


async def counts(settings: Settings) -> dict[str, int]:
    """Records by status; a Patient without a status has an active record."""
    async with deployment_database(settings) as database:
        patients = database.collection("Patient")
        async with database.gate.read():
            total = await patients.count_documents({"del": False})
            found = {s: await patients.count_documents({"del": False, f"{RULES_KEY}.status": s})
                     for s in STATUSES if s != "active"}
    return {"active": total - sum(found.values()), **found, "total": total}


def run(args: argparse.Namespace) -> int:
    try:
        found = asyncio.run(counts(Settings(data_dir=args.data_dir)))
    except (StoreUnavailable, PyMongoError) as exc:
        print(f"fhir-server status: the store of {args.data_dir} cannot be read: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(found))
    else:
        for status in (*STATUSES, "total"):
            print(f"{status:<8} {found[status]}")
    return 0
