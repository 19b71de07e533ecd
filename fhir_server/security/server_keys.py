"""The server's own secrets: made on first start, kept where every process of the deployment reads them.

With the embedded store a secret is a file under `<data dir>/keys/`, readable by the server's
user alone (0600). With MONGODB_URL it is a document of the store's `server_keys` collection, so
every process and machine on that database signs and verifies with the same secret. Whichever
process comes first makes the secret; the others read what it made.

Paging cursors are signed with one of these secrets; the private keys the server signs its
access tokens with (fhir_server.security.signing) live by the same rule, as numbered generations
of one name: `token-signing` (the first, made on first start), `token-signing.2`, ... each one
added by `fhir-server keys rotate` and removed by `keys retire`. Nothing here ever logs a key.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from fhir_server.timefmt import now_instant

log = logging.getLogger("fhir_server")
SECRET_BYTES = 32
KEYS_DIR = "keys"
KEYS_COLLECTION = "server_keys"


class ServerKeyError(RuntimeError):
    """A secret exists but cannot be used; the message is one line for the operator."""


async def server_secret(name: str, *, data_dir: Path | None, db: AsyncDatabase[dict[str, Any]]) -> bytes:
    """The secret called `name`: in `data_dir` when given (embedded store), in the store otherwise."""
    if data_dir is not None:
        return file_secret(data_dir / KEYS_DIR, name)
    return await stored_secret(db, name)


def file_secret(directory: Path, name: str) -> bytes:
    path = directory / f"{name}.key"
    return _decode(file_text(directory, path.name, lambda: secrets.token_hex(SECRET_BYTES) + "\n"), str(path))


def file_text(directory: Path, filename: str, make: Callable[[], str]) -> str:
    path = directory / filename
    if not path.exists():
        _create(directory, path, make())
    return _read_private(path)


def _read_private(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        # Someone widened it; it may have been read, but a server that stops here helps nobody.
        log.warning("%s was readable by others (mode %o); it is now 0600", path, mode)
        path.chmod(0o600)
    return path.read_text(encoding="ascii")


def _create(directory: Path, path: Path, text: str) -> bool:
    """Write `path` whole, mode 0600; False when it existed already (the existing one stays)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Written whole under a temporary name, then linked into place: a process starting at the
    # same moment either finds no file or the complete one, and only the first link wins.
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(handle, "w", encoding="ascii") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        _sync_directory(directory)
        return True
    finally:
        os.unlink(temporary)


def _sync_directory(directory: Path) -> None:
    directory_handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_handle)
    finally:
        os.close(directory_handle)


async def stored_secret(db: AsyncDatabase[dict[str, Any]], name: str) -> bytes:
    text = await _stored_text(db, name, lambda: secrets.token_hex(SECRET_BYTES))
    return _decode(text, f"the store's {KEYS_COLLECTION} document '{name}'")


async def _stored_text(db: AsyncDatabase[dict[str, Any]], name: str, make: Callable[[], str]) -> str:
    keys = db[KEYS_COLLECTION]
    document = await keys.find_one({"_id": name})
    if document is None:
        try:
            await keys.insert_one({"_id": name, "secret": make(), "created": now_instant()})
        except DuplicateKeyError:
            pass  # another process made it first; everyone uses that one
        document = await keys.find_one({"_id": name})
    if document is None or not isinstance(document.get("secret"), str):
        raise ServerKeyError(f"the store's {KEYS_COLLECTION} document '{name}' holds no secret")
    return str(document["secret"])


def _decode(text: str, where: str) -> bytes:
    try:
        secret = bytes.fromhex(text.strip())
    except ValueError:
        secret = b""
    if len(secret) != SECRET_BYTES:
        raise ServerKeyError(f"{where} is not a {SECRET_BYTES}-byte hex secret: restore it from a backup, or delete "
                             "it to have a new one made (what the old one signed is then refused)")
    return secret


@dataclass(frozen=True)
class Generation:
    """One generation of a key kept as text: `name` is `<ring>` (the first) or `<ring>.<number>`."""

    name: str
    number: int
    text: str
    # When it was made (epoch seconds): a generation signs from then until the next one is made.
    created: float


def _number(ring: str, name: str) -> int | None:
    if name == ring:
        return 1
    match = re.fullmatch(re.escape(ring) + r"\.([1-9][0-9]*)", name)
    return int(match.group(1)) if match else None


def _name(ring: str, number: int) -> str:
    return ring if number == 1 else f"{ring}.{number}"


def file_generations(directory: Path, ring: str) -> list[Generation]:
    """The generations of `ring` in a keys dir, oldest first (files `<ring>.pem`, `<ring>.N.pem`)."""
    found = []
    for path in directory.glob(f"{ring}*.pem") if directory.is_dir() else ():
        number = _number(ring, path.name[: -len(".pem")])
        if number is None:
            continue
        try:
            created = path.stat().st_mtime
            text = _read_private(path)
        except FileNotFoundError:
            continue  # retired while we listed
        found.append(Generation(path.name[: -len(".pem")], number, text, created))
    return sorted(found, key=lambda g: g.number)


async def generations(ring: str, *, data_dir: Path | None, db: AsyncDatabase[dict[str, Any]] | None) -> list[Generation]:
    """The generations of `ring` where keys live (data dir with the embedded store, else the store)."""
    if data_dir is not None:
        return file_generations(data_dir / KEYS_DIR, ring)
    assert db is not None, "without a data dir the keys live in the store"
    keys = db[KEYS_COLLECTION]
    # The first generation predates numbering: it is the document named after the ring.
    documents = {d["_id"]: d for d in await keys.find({"ring": ring}).to_list(None)}
    first = await keys.find_one({"_id": ring})
    if first is not None:
        documents[ring] = first
    found = []
    for document in documents.values():
        number = _number(ring, str(document["_id"]))
        if number is None or not isinstance(document.get("secret"), str):
            continue
        found.append(Generation(str(document["_id"]), number, document["secret"], _created(document)))
    return sorted(found, key=lambda g: g.number)


def _created(document: dict[str, Any]) -> float:
    """When a key document was made: `created_at`, or the `created` instant of a first key made
    before generations were numbered."""
    if isinstance(document.get("created_at"), (int, float)):
        return float(document["created_at"])
    try:
        return datetime.fromisoformat(str(document.get("created")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


async def add_generation(ring: str, make: Callable[[], str], *, data_dir: Path | None,
                         db: AsyncDatabase[dict[str, Any]] | None, first_only: bool = False) -> None:
    """Make the next generation of `ring` (after the newest one kept). With `first_only`, only when
    there is none yet (a server's first start); of two processes making the same one, one wins."""
    while True:
        existing = await generations(ring, data_dir=data_dir, db=db)
        if existing and first_only:
            return
        number = existing[-1].number + 1 if existing else 1
        name = _name(ring, number)
        if data_dir is not None:
            made = _create(data_dir / KEYS_DIR, data_dir / KEYS_DIR / f"{name}.pem", make())
        else:
            assert db is not None
            try:
                await db[KEYS_COLLECTION].insert_one({"_id": name, "ring": ring, "generation": number,
                                                      "secret": make(), "created": now_instant(),
                                                      "created_at": time.time()})
                made = True
            except DuplicateKeyError:
                made = False
        if made or first_only:
            return


async def remove_generation(ring: str, name: str, *, data_dir: Path | None,
                            db: AsyncDatabase[dict[str, Any]] | None) -> None:
    """Delete one generation for good: what it signed no longer verifies anywhere."""
    if _number(ring, name) is None:
        raise ValueError(f"{name} is not a generation of {ring}")
    if data_dir is not None:
        directory = data_dir / KEYS_DIR
        (directory / f"{name}.pem").unlink(missing_ok=True)
        _sync_directory(directory)
        return
    assert db is not None
    await db[KEYS_COLLECTION].delete_one({"_id": name})
