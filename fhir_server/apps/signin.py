"""Who the person in the browser is, for the authorization pages.

The trial sign-in (FHIR_TRIAL_SIGNIN=1, off by default, so never on in production unless an
operator turns it on) identifies a patient by INS and a one-time code that
`fhir-server apps signin-code --ins INS` prints: single use, valid CODE_SECONDS, only its SHA-256
stored (`signin_codes`). There is no password to leak or reuse; the code is what an operator hands a
tester. The page says in words that this is a trial sign-in.

A signed-in browser session is a `web_sessions` document keyed by the SHA-256 of the session id
(fhir_server.web.session), holding the person's INS; the browser gets a new session id at sign-in
(ASVS 3.2.1), so an id planted before it is worth nothing after. It lasts SESSION_SECONDS.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from fhir_server.storage.database import Database

CODES = "signin_codes"
SESSIONS = "web_sessions"
CODE_SECONDS = 600
SESSION_SECONDS = 1800
# Unambiguous letters and digits (no 0/O, 1/I/L): a code is read from a terminal and typed.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 10


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def well_formed_ins(ins: str) -> bool:
    """Looks like an INS (INS-NIR or INS-NIA, 13 characters, or 15 with the key; Corsica's 2A/2B)."""
    return ins.isascii() and ins.isalnum() and 13 <= len(ins) <= 15


async def issue_code(db: AsyncDatabase[dict[str, Any]], ins: str) -> str:
    """A new one-time sign-in code for this INS (the caller holds the writer gate)."""
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    await db[CODES].delete_many({"expires": {"$lt": time.time()}})
    await db[CODES].insert_one({"_id": digest(code), "ins": ins, "expires": time.time() + CODE_SECONDS})
    return code


async def use_code(database: Database, ins: str, code: str) -> bool:
    """Whether `code` is a live code of this INS; it is spent either way if it was one of its."""
    normalised = code.strip().upper().replace(" ", "").replace("-", "")
    async with database.gate.write(exclude_readers=False):
        found = await database.db[CODES].find_one_and_delete({"_id": digest(normalised), "ins": ins})
    return found is not None and found["expires"] > time.time()


async def sign_in(database: Database, session: str, ins: str) -> None:
    async with database.gate.write(exclude_readers=False):
        await database.db[SESSIONS].delete_many({"expires": {"$lt": time.time()}})
        await database.db[SESSIONS].insert_one({"_id": digest(session), "ins": ins,
                                                "expires": time.time() + SESSION_SECONDS})


async def signed_in(db: AsyncDatabase[dict[str, Any]], session: str) -> str | None:
    """The INS of the person signed in on this browser session, or None."""
    found = await db[SESSIONS].find_one({"_id": digest(session)})
    return str(found["ins"]) if found and found["expires"] > time.time() else None
