"""`fhir-server mongo-setup`: a store made ready before the first server starts on it.

On a mongos it applies the shard plan (fhir_server/storage/sharding.py): sharding enabled on the
clinical and audit databases, each plan collection created, given its key's index and sharded by
that key. On any store (mongos, replica set, standalone, the embedded store) it then creates every
collection and index the server itself creates, from the server's own index lists, so the indexes
of all the resource types are built while the collections are empty instead of by the first write
of each type in production.

What the store already has is read first and left alone, so a second run sends nothing; a
collection sharded by another key is an error the operator must resolve, never resharded here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.mongo_client import AsyncMongoClient
from pymongo.errors import PyMongoError

from fhir_server.audit.store import COLLECTION as AUDIT_EVENTS
from fhir_server.audit.store import INDEXES as AUDIT_INDEXES
from fhir_server.audit.store import audit_database_name
from fhir_server.config import Settings
from fhir_server.definitions import structure
from fhir_server.search.indexed_fields import index_fields
from fhir_server.search.lookup import INDEXES as LOOKUP_INDEXES
from fhir_server.search.lookup import LOOKUP
from fhir_server.search.parameters import SearchParameterRegistry, parameter_files
from fhir_server.storage.database import (HISTORY, HISTORY_INDEXES, SERVER_COLLECTIONS, Database, StoreCapabilities,
                                          capabilities_for, collection_name, search_indexes)
from fhir_server.storage.embedded import StoreUnavailable
from fhir_server.storage.sharding import audit_plan, shard_plan
from fhir_server.subscriptions.store import INDEXES as SUBSCRIPTION_INDEXES
from fhir_server.export.jobs import INDEXES as EXPORT_INDEXES
from fhir_server.record.scheduler import INDEXES as LIFECYCLE_INDEXES

# PyMongo's GridFS bucket (storage/binaries.py, bucket `binaries`) creates these on its first upload;
# they are the GridFS specification's indexes (github.com/mongodb/specifications, source/gridfs/gridfs-spec.md,
# "Indexes"). The chunks index is also the chunks' shard key, so it must exist before sharding them.
GRIDFS_INDEXES = {
    "binaries.files": (IndexModel([("filename", ASCENDING), ("uploadDate", ASCENDING)]),),
    "binaries.chunks": (IndexModel([("files_id", ASCENDING), ("n", ASCENDING)], unique=True),),
}
# What a mongos answers in `hello` (MongoDB manual, "hello" command: `msg`).
MONGOS = "isdbgrid"


class SetupRefused(Exception):
    """The store is in a state mongo-setup will not change (a collection sharded by another key)."""


@dataclass
class Wanted:
    """One collection as the server needs it: its indexes and, on a mongos, its shard key."""

    db: str
    collection: str
    indexes: list[IndexModel] = field(default_factory=list)
    key: dict[str, Any] | None = None


@dataclass
class State:
    """What the store already has; empty for a store never set up (and for `--dry-run --sharded`)."""

    collections: dict[str, set[str]] = field(default_factory=dict)
    # (db, collection) -> the keys of its indexes, each as a list of (field, direction) pairs.
    indexes: dict[tuple[str, str], list[list[tuple[str, Any]]]] = field(default_factory=dict)
    sharding_enabled: set[str] = field(default_factory=set)
    # "db.collection" -> its shard key.
    sharded: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Command:
    db: str
    body: dict[str, Any]

    def line(self) -> str:
        return json.dumps({"db": self.db, "command": self.body})


def wanted(settings: Settings, capabilities: StoreCapabilities, *, sharded: bool) -> list[Wanted]:
    """Every collection and index of the clinical and audit databases, and each plan collection's key if `sharded`."""
    clinical = settings.database
    audit = audit_database_name(clinical, settings.audit_database)
    registry = SearchParameterRegistry.load(parameter_files(settings.profiles_dir))
    fields = index_fields(registry)
    types = sorted(structure.resource_types())
    out: dict[tuple[str, str], Wanted] = {}

    def entry(db: str, name: str) -> Wanted:
        return out.setdefault((db, name), Wanted(db, name))

    for rtype in types:
        entry(clinical, collection_name(rtype)).indexes += search_indexes(*fields(rtype), capabilities)
    for name in SERVER_COLLECTIONS:
        entry(clinical, name)
    entry(clinical, HISTORY).indexes += HISTORY_INDEXES
    entry(clinical, LOOKUP).indexes += LOOKUP_INDEXES
    # The embedded store names GridFS's collections its own way (`binaries_files`) and refuses
    # `binaries.files` by name: there the bucket makes what it needs on its first upload.
    gridfs = {} if capabilities.embedded else GRIDFS_INDEXES
    for name, indexes in [*SUBSCRIPTION_INDEXES.items(), *EXPORT_INDEXES.items(), *gridfs.items()]:
        entry(clinical, name).indexes += indexes
    for rtype, indexes in LIFECYCLE_INDEXES.items():
        entry(clinical, collection_name(rtype)).indexes += indexes
    entry(audit, AUDIT_EVENTS).indexes += AUDIT_INDEXES
    if sharded:
        for db, plan in ((clinical, shard_plan(types)), (audit, audit_plan())):
            for item in plan:
                entry(db, item["collection"]).key = item["key"]
    return list(out.values())


def _pairs(key: Any) -> list[tuple[str, Any]]:
    return [(name, value) for name, value in dict(key).items()]


def commands(plan: Iterable[Wanted], state: State) -> Iterator[Command]:
    """The commands that bring the store from `state` to `plan`, in the order they must run:
    per database, sharding first; per collection, creation, the key's index, sharding, then the
    other indexes (built on each shard once the collection is spread)."""
    enabled = set(state.sharding_enabled)
    for want in plan:
        namespace = f"{want.db}.{want.collection}"
        if want.key is not None and want.db not in enabled:
            enabled.add(want.db)
            yield Command("admin", {"enableSharding": want.db})
        if want.collection not in state.collections.get(want.db, set()):
            yield Command(want.db, {"create": want.collection})
        have = list(state.indexes.get((want.db, want.collection), []))
        todo: list[IndexModel] = []
        if want.key is not None:
            current = state.sharded.get(namespace)
            if current is not None and _pairs(current) != _pairs(want.key):
                raise SetupRefused(f"{namespace} is sharded by {json.dumps(current)}, the plan says "
                                   f"{json.dumps(want.key)}: resharding is the operator's decision "
                                   "(reshardCollection), mongo-setup does not do it")
            if current is None:
                if _pairs(want.key) not in have:
                    # Needed before shardCollection on a collection that already holds documents; the
                    # server's own index on the same key, if it has one, with its options (unique).
                    same = [index for index in want.indexes if _pairs(index.document["key"]) == _pairs(want.key)]
                    yield _create_indexes(want.db, want.collection, same or [IndexModel(list(want.key.items()))])
                    have.append(_pairs(want.key))
                yield Command("admin", {"shardCollection": namespace, "key": dict(want.key)})
        for index in want.indexes:
            key = _pairs(index.document["key"])
            if key not in have:
                todo.append(index)
                have.append(key)
        if todo:
            yield _create_indexes(want.db, want.collection, todo)


def _create_indexes(db: str, collection: str, indexes: list[IndexModel]) -> Command:
    return Command(db, {"createIndexes": collection,
                        "indexes": [{**index.document, "key": dict(index.document["key"])} for index in indexes]})


async def read_state(client: AsyncMongoClient[dict[str, Any]], plan: list[Wanted], *, mongos: bool) -> State:
    state = State()
    databases = sorted({want.db for want in plan})
    for db in databases:
        names = set(await client[db].list_collection_names())
        state.collections[db] = names
        for name in names:
            state.indexes[(db, name)] = [_pairs(index["key"]) async for index in await client[db][name].list_indexes()]
    if mongos:
        config = client["config"]
        async for doc in config["databases"].find({"_id": {"$in": databases}}):
            # Before MongoDB 6.0 a database shards only once `partitioned`; from 6.0 on every database may.
            if doc.get("partitioned", True):
                state.sharding_enabled.add(doc["_id"])
        namespaces = [f"{want.db}.{want.collection}" for want in plan if want.key is not None]
        async for doc in config["collections"].find({"_id": {"$in": namespaces}}):
            if not doc.get("dropped") and "key" in doc:
                state.sharded[doc["_id"]] = dict(doc["key"])
    return state


def add_arguments(commands: Any) -> None:
    setup = commands.add_parser(
        "mongo-setup", help="shard (on a mongos) and index the store at MONGODB_URL before the server uses it",
        description="Apply the shard plan on a mongos (enable sharding, shard collections) and create every "
                    "collection and index the server creates, on a mongos, a replica set, a standalone mongod or "
                    "the embedded store of a running server. What exists is left alone; a second run sends nothing.")
    setup.add_argument("--data-dir", type=Path, default=None,
                       help="the data dir of the server whose embedded store MONGODB_URL reaches")
    setup.add_argument("--dry-run", action="store_true",
                       help="print the commands it would send, one JSON object a line, and send none")
    setup.add_argument("--sharded", action="store_true",
                       help="with --dry-run: the commands for a new sharded cluster, without connecting to one")


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args, Settings()))
    except (StoreUnavailable, SetupRefused) as exc:
        print(f"fhir-server mongo-setup: {exc}", file=sys.stderr)
    except PyMongoError as exc:
        # Reading what the store has (listIndexes, config.collections) failed: no command was sent.
        first = (str(exc).splitlines() or [""])[0]
        print(f"fhir-server mongo-setup: the store did not answer: {exc.__class__.__name__}: {first}", file=sys.stderr)
    return 1


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.sharded and not args.dry_run:
        raise SetupRefused("--sharded goes with --dry-run only: a real run asks the store whether it is a mongos")
    if args.dry_run and args.sharded:
        for command in commands(wanted(settings, capabilities_for({"msg": MONGOS}, {}), sharded=True), State()):
            print(command.line())
        return 0
    if not settings.mongodb_url:
        raise SetupRefused("MONGODB_URL is not set: it names the MongoDB to set up (or the embedded store of a "
                           "running server, with that server's --data-dir)")
    database = Database(settings.mongodb_url, settings.database, data_dir=args.data_dir)
    try:
        try:
            await database.connect()
        except StoreUnavailable as exc:
            if isinstance(exc.__cause__, PyMongoError):
                raise StoreUnavailable(
                    f"cannot reach MongoDB at MONGODB_URL: {exc.__cause__.__class__.__name__}") from None
            raise
        mongos = (await database.client.admin.command("hello")).get("msg") == MONGOS
        plan = wanted(settings, database.capabilities, sharded=mongos)
        what = ("a mongos" if mongos else "the embedded store" if database.capabilities.embedded else "MongoDB")
        if args.dry_run:
            todo = list(commands(plan, await read_state(database.client, plan, mongos=mongos)))
            for command in todo:
                print(command.line())
        else:
            # On the embedded store, as one of the server's writers: nothing else writes while indexes are built.
            async with database.gate.write(exclude_readers=False):
                # Planned in full first, so a refused key sends nothing.
                todo = list(commands(plan, await read_state(database.client, plan, mongos=mongos)))
                for command in todo:
                    await _send(database.client, command)
    finally:
        await database.close()
    summary = _summary(todo, mongos, sent=not args.dry_run)
    if args.dry_run:
        print(f"fhir-server mongo-setup: dry run on {what} at MONGODB_URL, nothing sent: {summary}", file=sys.stderr)
    else:
        print(f"{what} at MONGODB_URL: {summary}")
    return 0


async def _send(client: AsyncMongoClient[dict[str, Any]], command: Command) -> None:
    try:
        await client[command.db].command(command.body)
    except PyMongoError as exc:
        name, target = next(iter(command.body.items()))
        first = (str(exc).splitlines() or [""])[0]
        raise SetupRefused(f"the store refused {name} {target}: {exc.__class__.__name__}: {first}; what was sent "
                           "before it stays, and a new run sends only what is still missing") from exc


def _summary(todo: list[Command], mongos: bool, *, sent: bool) -> str:
    if not todo:
        return "nothing to change, every collection and index" + (" and shard key" if mongos else "") + " is in place"
    done: Counter[str] = Counter()
    for command in todo:
        name = next(iter(command.body))
        done[name] += len(command.body["indexes"]) if name == "createIndexes" else 1
    verbs = {"enableSharding": ("databases sharding-enabled", "databases to enable sharding on"),
             "create": ("collections created", "collections to create"),
             "shardCollection": ("collections sharded", "collections to shard"),
             "createIndexes": ("indexes created", "indexes to create")}
    return ", ".join(f"{done[name]} {words[0] if sent else words[1]}" for name, words in verbs.items() if done[name])
