"""The enrolment notice (CSP R.1111-28): each person enrolled is told, once, that their record
opens six weeks later unless they object, and how to object.

- By e-mail when the person (or, for a minor, a legal representative) has an address: a message
  of mappings/notifications/enrolment-notice.txt queued in the durable mail queue
  (fhir_server.events.mail_queue) in the same store transaction as the Patient version that
  records the notice date, so a notice is queued exactly when that date is written. The server's
  mail worker sends it over FHIR_SMTP_URL, or into the data dir's mail spool.
- Otherwise by post: a row of the postal export, kept in the store (`postal_notices`, same
  transaction) and appended to a CSV file (`export`), for the insurer's mailing house. A row is
  marked exported once the file holds it; a crash between the two writes the row again on the
  next export (at least once, like the e-mail), recognisable by its `notice_id`.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from fhir_server.events.mail import render
from fhir_server.storage.database import Database
from fhir_server.timefmt import parse_instant

# Six weeks to object (CSP R.1111-28): the record opens on the 42nd day after the notice.
OBJECTION_DAYS = 42
TEMPLATE = "enrolment-notice"
POSTAL_NOTICES = "postal_notices"
POSTAL_FILE = "postal-notices.csv"
POSTAL_COLUMNS = ("notice_id", "ins", "recipient", "line", "postal_code", "city", "country", "notice_date",
                  "opening_date")
# Rows exported per round trip.
EXPORT_CHUNK = 1000


def emails(resource: dict[str, Any]) -> list[str]:
    found = [t.get("value") for t in resource.get("telecom") or []
             if isinstance(t, dict) and t.get("system") == "email" and t.get("use") != "old"]
    return [v.strip() for v in found if isinstance(v, str) and "@" in v]


def postal_address(resource: dict[str, Any]) -> dict[str, Any] | None:
    """The first postal address (not only `physical`, not `old`) that has lines or a city."""
    for address in resource.get("address") or []:
        if isinstance(address, dict) and address.get("type") != "physical" and address.get("use") != "old" \
                and (address.get("line") or address.get("city")):
            return address
    return None


def full_name(resource: dict[str, Any]) -> str:
    for name in resource.get("name") or []:
        if isinstance(name, dict):
            words = [*(g for g in name.get("given") or [] if isinstance(g, str)), name.get("family") or ""]
            text = " ".join(w for w in words if w) or name.get("text") or ""
            if text:
                return str(text)
    return ""


def _day(moment: str, days: int) -> str:
    return (parse_instant(moment) + timedelta(days=days)).strftime("%d/%m/%Y")


@dataclass(frozen=True)
class Notice:
    """The notice one person gets: by e-mail to `recipients`, else by post to `address`."""
    patient_id: str
    ins: str
    name: str
    recipients: tuple[str, ...]
    address: dict[str, Any] | None
    recipient_name: str

    @property
    def channel(self) -> str:
        return "email" if self.recipients else "postal"

    def key(self, stamp: str) -> str:
        return f"enrolment-notice/{self.patient_id}/{stamp}"

    def mail_job(self, stamp: str, sender: str) -> dict[str, Any]:
        """The mail queue's document for this notice (fhir_server.events.mail_queue.MailQueue.add)."""
        values = {"name": self.name or "Madame, Monsieur", "ins": self.ins, "opening": _day(stamp, OBJECTION_DAYS),
                  "deadline": _day(stamp, OBJECTION_DAYS - 1)}
        key = self.key(stamp)
        message_id, raw = render(TEMPLATE, values, key=key, sender=sender, recipients=list(self.recipients),
                                 moment_utc=stamp)
        return {"_id": key, "mid": message_id, "from": sender, "to": list(self.recipients),
                "raw": raw, "queued": stamp, "attempts": 0, "next": 0.0}

    def postal_row(self, stamp: str, batch: str) -> dict[str, Any]:
        address = self.address or {}
        lines = [line for line in address.get("line") or [] if isinstance(line, str)]
        row = {"notice_id": self.key(stamp), "ins": self.ins, "recipient": self.recipient_name, "line": ", ".join(lines),
               "postal_code": address.get("postalCode") or "", "city": address.get("city") or "",
               "country": address.get("country") or "", "notice_date": stamp,
               "opening_date": _day(stamp, OBJECTION_DAYS)}
        return {"_id": self.key(stamp), "b": batch, "exp": 0, "row": row}


def new_batch() -> str:
    """What the postal rows of one transaction share, so they are marked exported together."""
    return uuid.uuid4().hex


async def prepare_store(database: Database) -> None:
    await database.ensure_collections([POSTAL_NOTICES])
    # Outside any transaction: the embedded store cannot build an index inside one.
    async with database.gate.write(exclude_readers=False):
        await database.collection(POSTAL_NOTICES).create_index("exp")
        await database.collection(POSTAL_NOTICES).create_index("b")


async def export(database: Database, path: Path) -> int:
    """Append the rows not yet exported to the CSV file at `path` (with a header when it is new),
    then mark them; returns how many. A file lock beside it keeps two exporters (a server's
    workers, a command) from interleaving rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    exported = 0
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        postal = database.collection(POSTAL_NOTICES)
        while True:
            async with database.gate.read():
                docs = await postal.find({"exp": 0}, {"b": 1, "row": 1}).limit(EXPORT_CHUNK).to_list(None)
            if not docs:
                return exported
            batches = sorted({d["b"] for d in docs})
            async with database.gate.read():
                # Whole batches, so marking them by `b` marks no row the file lacks.
                docs = [d for b in batches for d in await postal.find({"b": b, "exp": 0}, {"row": 1}).to_list(None)]
            _append(path, [d["row"] for d in docs])
            async with database.gate.write(exclude_readers=False):
                for b in batches:
                    await postal.update_many({"b": b}, {"$set": {"exp": 1}})
            exported += len(docs)
    finally:
        os.close(lock)


def _append(path: Path, rows: list[dict[str, Any]]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=POSTAL_COLUMNS, lineterminator="\n")
    new = not path.exists() or path.stat().st_size == 0
    if new:
        writer.writeheader()
    writer.writerows(rows)
    with open(path, "a", encoding="utf-8", newline="") as out:
        out.write(text.getvalue())
        out.flush()
        os.fsync(out.fileno())
