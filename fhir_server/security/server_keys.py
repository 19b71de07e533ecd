"""The server's own secrets: made on first start, kept where every process of the deployment reads them.

With the embedded store a secret is a file under `<data dir>/keys/`, readable by the server's
user alone (0600). With MONGODB_URL it is a document of the store's `server_keys` collection, so
every process and machine on that database signs and verifies with the same secret. Whichever
process comes first makes the secret; the others read what it made.

Paging cursors are signed with one of these secrets; the private key the server signs its
access tokens with (fhir_server.security.signing) lives by the same rule.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import tempfile
from collections.abc import Callable
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


async def server_text(name: str, make: Callable[[], str], *, data_dir: Path | None,
                      db: AsyncDatabase[dict[str, Any]] | None) -> str:
    """A key kept as text (a PEM private key): made by `make` the first time, where secrets live."""
    if data_dir is not None:
        return file_text(data_dir / KEYS_DIR, f"{name}.pem", make)
    assert db is not None, "without a data dir the key lives in the store"
    return await _stored_text(db, name, make)


def file_secret(directory: Path, name: str) -> bytes:
    path = directory / f"{name}.key"
    return _decode(file_text(directory, path.name, lambda: secrets.token_hex(SECRET_BYTES) + "\n"), str(path))


def file_text(directory: Path, filename: str, make: Callable[[], str]) -> str:
    path = directory / filename
    if not path.exists():
        _create(directory, path, make())
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        # Someone widened it; it may have been read, but a server that stops here helps nobody.
        log.warning("%s was readable by others (mode %o); it is now 0600", path, mode)
        path.chmod(0o600)
    return path.read_text(encoding="ascii")


def _create(directory: Path, path: Path, text: str) -> None:
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
            return
        directory_handle = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_handle)
        finally:
            os.close(directory_handle)
    finally:
        os.unlink(temporary)


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
