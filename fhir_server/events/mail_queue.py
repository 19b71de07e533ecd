"""The durable mail queue: messages wait in the store until the SMTP server (or the spool) took
them, so an SMTP server that is down delays them and a restart loses none.

Each message has a key saying what it tells to whom (`document/{id}/patient`); a key is queued
once and, once sent, remembered in `mail_sent`, so the same news is not sent twice when its
event is delivered twice or found by two paths. Sending is at least once: a crash between the
SMTP server's acceptance and the record of it sends the message again, with the same Message-ID.
"""

from __future__ import annotations

import time
from email.message import EmailMessage
from typing import Any

from pymongo.errors import DuplicateKeyError

from fhir_server.storage.database import MAIL_QUEUE, MAIL_SENT, Database
from fhir_server.timefmt import now_instant

# Retries after 5 s, 10 s, 20 s... then hourly.
FIRST_RETRY_SECONDS = 5.0
LAST_RETRY_SECONDS = 3600.0


class MailQueue:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.queue = database.collection(MAIL_QUEUE)
        self.sent = database.collection(MAIL_SENT)

    async def known(self, key: str) -> bool:
        """Whether this message is queued or was sent."""
        async with self.database.gate.read():
            return (await self.sent.find_one({"_id": key}, {"_id": 1}) is not None
                    or await self.queue.find_one({"_id": key}, {"_id": 1}) is not None)

    async def known_among(self, keys: list[str]) -> set[str]:
        """Which of `keys` are queued or were sent: two reads for any number of keys."""
        async with self.database.gate.read():
            sent = {doc["_id"] for doc in await self.sent.find({"_id": {"$in": keys}}, {"_id": 1}).to_list(None)}
            rest = [key for key in keys if key not in sent]
            queued = {doc["_id"] for doc in await self.queue.find({"_id": {"$in": rest}}, {"_id": 1}).to_list(None)} \
                if rest else set()
        return sent | queued

    async def add(self, key: str, message: EmailMessage, recipients: list[str], *, unknown: bool = False) -> bool:
        """Queue the message under `key`; False when that key is already queued or sent (`unknown`:
        the caller has just found it neither; a key queued meanwhile is still refused, by its `_id`)."""
        if not unknown and await self.known(key):
            return False
        job = {"_id": key, "mid": message["Message-ID"], "from": message["From"], "to": recipients,
               "raw": message.as_string(), "queued": now_instant(), "attempts": 0, "next": 0.0}
        try:
            async with self.database.gate.write(exclude_readers=False):
                await self.queue.insert_one(job)
        except DuplicateKeyError:
            return False
        return True

    async def due(self, limit: int) -> list[dict[str, Any]]:
        async with self.database.gate.read():
            cursor = self.queue.find({"next": {"$lte": time.time()}}).sort("next", 1).limit(limit)
            return await cursor.to_list(length=limit)

    async def was_sent(self, key: str) -> bool:
        async with self.database.gate.read():
            return await self.sent.find_one({"_id": key}, {"_id": 1}) is not None

    async def done(self, job: dict[str, Any], state: str, detail: str | None = None) -> None:
        """Record the outcome, then take the job out: a crash in between leaves a job whose
        record says it is done, which the next round drops without sending."""
        record = {"_id": job["_id"], "mid": job["mid"], "to": job["to"], "state": state, "at": now_instant(),
                  "attempts": job["attempts"] + 1}
        if detail:
            record["detail"] = detail
        async with self.database.gate.write(exclude_readers=False):
            try:
                await self.sent.insert_one(record)
            except DuplicateKeyError:
                pass
            await self.queue.delete_one({"_id": job["_id"]})

    async def drop(self, job: dict[str, Any]) -> None:
        async with self.database.gate.write(exclude_readers=False):
            await self.queue.delete_one({"_id": job["_id"]})

    async def retry_later(self, job: dict[str, Any], error: str) -> float:
        """Put the job off, longer after each failure; returns the delay."""
        attempts = job["attempts"] + 1
        delay = min(FIRST_RETRY_SECONDS * 2 ** (attempts - 1), LAST_RETRY_SECONDS)
        async with self.database.gate.write(exclude_readers=False):
            await self.queue.update_one({"_id": job["_id"]},
                                        {"$set": {"attempts": attempts, "next": time.time() + delay, "error": error}})
        return delay
