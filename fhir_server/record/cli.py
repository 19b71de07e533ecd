"""`fhir-server enrol ROSTER`: stream an insurer's roster into the record (fhir_server.record.enrolment).

- `--data-dir DIR`: into the store of DIR, while its server runs or not (the running server's
  store, through the data dir's writer gate; or one started for the command; or MONGODB_URL).
- `--base-url URL --token T`: through a running server, `POST [base]/$enrol` one batch at a time,
  with an insurer's system token (`fhir-server token system --role insurer`).

Resumable: after each batch is committed, a checkpoint file records how far into the roster the
run got (a byte offset) and its counts, keyed by the roster's identity (path, size, modification
time), the target and the part; a run started again on the same roster goes on from there, and
the checkpoint goes once the roster is done. Constant memory: the roster is read line by line,
`--batch` persons at a time; rejected lines go to a file beside the checkpoint as they come (the
summary shows the first ones). `--part K/N` takes the persons whose INS hashes to K of N, so N
processes can split one roster (against MongoDB; the embedded store has one writer anyway).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from fhir_server.config import Settings
from fhir_server.record import notice as notices
from fhir_server.record.enrolment import RESULTS, Outcome
from fhir_server.record.roster import Person, Rejected, detect_format, read

DEFAULT_BATCH = 500
# Rejected lines the summary prints; all of them are in the rejects file.
SHOWN_REJECTS = 20
CHECKPOINT_DIR = "enrolment"
HTTP_TIMEOUT = 300.0

# How a batch is enrolled: prepared (reading only), then written; the next batch is prepared
# while one is written.
Prepare = Callable[[list[Person]], Awaitable[Any]]
Write = Callable[[Any], Awaitable[list[Outcome]]]


def add_arguments(commands: Any) -> None:
    enrol = commands.add_parser("enrol", help="enrol the persons of an insurer's roster (NDJSON or CSV): "
                                              "pending records, notices")
    enrol.add_argument("roster", type=Path, help="NDJSON (Patient and RelatedPerson lines) or CSV (README, Enrolment)")
    enrol.add_argument("--data-dir", type=Path, default=None, help="write into the store of this data dir")
    enrol.add_argument("--base-url", help="write through the server at this FHIR base URL (http://host:port/fhir)")
    enrol.add_argument("--token", default=os.environ.get("FHIR_TOKEN"),
                       help="bearer token for --base-url: an insurer's system token (default: FHIR_TOKEN)")
    enrol.add_argument("--format", choices=("ndjson", "csv"), help="the roster's format (default: from its name)")
    enrol.add_argument("--part", type=_part, default=(1, 1), metavar="K/N",
                       help="only the persons whose INS hashes to part K of N (several processes split one roster)")
    enrol.add_argument("--batch", type=int, default=DEFAULT_BATCH, help=f"persons per transaction (default {DEFAULT_BATCH})")
    enrol.add_argument("--postal-out", type=Path,
                       help=f"the postal notices' CSV (default: {notices.POSTAL_FILE} in the data dir); "
                            "with --base-url the server writes them into its own data dir")
    enrol.add_argument("--checkpoint", type=Path, help="the checkpoint file (default: in the data dir, or beside the roster)")
    enrol.add_argument("--restart", action="store_true", help="ignore a checkpoint and read the roster from its start")
    enrol.add_argument("--quiet", action="store_true", help="no progress bar")
    enrol.add_argument("--json", action="store_true", help="print the summary as JSON")


def _part(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError("K/N, e.g. 2/4") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError("K between 1 and N")
    return k, n


def in_part(ins: tuple[str, str] | None, part: tuple[int, int]) -> bool:
    """Whether this process takes the person: by a hash of the INS value (the same INS in two
    parts would race for one Patient). Lines of no person go to part 1, so each is reported once."""
    k, n = part
    if n == 1:
        return True
    if ins is None:
        return k == 1
    return int.from_bytes(hashlib.sha256(ins[1].encode()).digest()[:8], "big") % n == k - 1


# ------------------------------------------------------------------------------ the checkpoint


@dataclass
class Progress:
    """Where a run is and what it did: what the checkpoint keeps."""
    identity: str
    offset: int = 0
    line: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESULTS, 0))
    notices: dict[str, int] = field(default_factory=lambda: {"email": 0, "postal": 0})
    rejects_size: int = 0
    seconds: float = 0.0

    @property
    def persons(self) -> int:
        return sum(self.counts.values())


def roster_identity(roster: Path, target: str, part: tuple[int, int]) -> str:
    stat = roster.stat()
    key = "|".join((str(roster.resolve()), str(stat.st_size), str(stat.st_mtime_ns), target, f"{part[0]}/{part[1]}"))
    return hashlib.sha256(key.encode()).hexdigest()


def load_checkpoint(path: Path, identity: str) -> Progress:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Progress(identity)
    if data.get("identity") != identity:
        return Progress(identity)
    return Progress(identity, data["offset"], data["line"], data["counts"], data["notices"], data["rejects_size"],
                    data.get("seconds", 0.0))


def save_checkpoint(path: Path, progress: Progress) -> None:
    """Written whole or not at all (a new file renamed over the old one)."""
    partial = path.with_name(path.name + ".tmp")
    with open(partial, "w", encoding="utf-8") as out:
        json.dump(progress.__dict__, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


# ------------------------------------------------------------------------------ the run


class Run:
    def __init__(self, args: argparse.Namespace, prepare: Prepare, write: Write,
                 after_batch: Callable[[], Awaitable[None]], checkpoint: Path, fmt: str, progress: Progress) -> None:
        self.args = args
        self.prepare = prepare
        self.write = write
        # The batch being written, and its persons' INS.
        self.writing: asyncio.Task[None] | None = None
        self.writing_ins: set[tuple[str, str]] = set()
        self.after_batch = after_batch
        self.checkpoint = checkpoint
        self.rejects_path = checkpoint.with_name(checkpoint.name.removesuffix(".json") + ".rejected.tsv")
        self.fmt = fmt
        self.progress = progress
        self.shown: list[tuple[int, str]] = []

    async def run(self) -> Progress:
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        # What earlier runs wrote past the checkpoint is written again by this one.
        with open(self.rejects_path, "a+b") as rejects:
            rejects.truncate(self.progress.rejects_size)
        self._read_shown()
        started = time.monotonic() - self.progress.seconds
        size = self.args.roster.stat().st_size
        bar = tqdm(total=size, initial=self.progress.offset, unit="B", unit_scale=True, unit_divisor=1024,
                   disable=self.args.quiet, desc="enrol", file=sys.stderr, dynamic_ncols=True)
        batch: list[Person] = []
        rejected: list[Rejected] = []
        seen: set[tuple[str, str]] = set()
        end, line = self.progress.offset, self.progress.line
        try:
            for item in read(self.args.roster, self.fmt, self.progress.offset, self.progress.line):
                if isinstance(item, Person) and item.ins in seen:
                    # The same person twice: the second line goes after the first is written.
                    await self._commit(batch, rejected, end, line, started, bar)
                    batch, rejected, seen = [], [], set()
                if in_part(item.ins, self.args.part):
                    if isinstance(item, Person):
                        batch.append(item)
                        seen.add(item.ins)
                    else:
                        rejected.append(item)
                end, line = item.end, _last_line(item)
                if len(batch) >= self.args.batch:
                    await self._commit(batch, rejected, end, line, started, bar)
                    batch, rejected, seen = [], [], set()
            await self._commit(batch, rejected, end, line, started, bar)
            await self._settle()
        finally:
            if self.writing is not None:
                self.writing.cancel()
            bar.close()
        return self.progress

    async def _commit(self, batch: list[Person], rejected: list[Rejected], end: int, line: int, started: float,
                      bar: tqdm) -> None:
        """Prepare the batch while the one before is written, then write it after that one."""
        names = {p.ins for p in batch}
        if names & self.writing_ins:
            # Prepared now, it would be planned on what the batch being written is about to change.
            await self._settle()
        prepared = await self.prepare(batch) if batch else None
        await self._settle()
        self.writing = asyncio.create_task(self._write(prepared, rejected, end, line, started, bar))
        self.writing_ins = names

    async def _settle(self) -> None:
        if self.writing is not None:
            writing, self.writing = self.writing, None
            self.writing_ins = set()
            await writing

    async def _write(self, prepared: Any, rejected: list[Rejected], end: int, line: int, started: float,
                     bar: tqdm) -> None:
        outcomes = await self.write(prepared) if prepared is not None else []
        failed = [(r.line, r.reason) for r in rejected]
        for outcome in outcomes:
            self.progress.counts[outcome.result] += 1
            if outcome.notice:
                self.progress.notices[outcome.notice] += 1
            if outcome.result == "rejected":
                failed.append((outcome.line, outcome.reason))
        self.progress.counts["rejected"] += len(rejected)
        failed.sort()
        if failed:
            with open(self.rejects_path, "a", encoding="utf-8") as out:
                out.writelines(f"{number}\t{' '.join(reason.split())}\n" for number, reason in failed)
            self.shown += failed[:SHOWN_REJECTS - len(self.shown)] if len(self.shown) < SHOWN_REJECTS else []
        await self.after_batch()
        self.progress.offset, self.progress.line = end, line
        self.progress.rejects_size = self.rejects_path.stat().st_size
        self.progress.seconds = time.monotonic() - started
        save_checkpoint(self.checkpoint, self.progress)
        bar.update(end - bar.n)
        elapsed = max(self.progress.seconds, 1e-9)
        bar.set_postfix_str(f"{self.progress.persons} persons, {self.progress.persons / elapsed:,.0f}/s", refresh=False)

    def _read_shown(self) -> None:
        with open(self.rejects_path, encoding="utf-8") as rejects:
            for text in rejects:
                if len(self.shown) >= SHOWN_REJECTS:
                    break
                number, _, reason = text.rstrip("\n").partition("\t")
                self.shown.append((int(number), reason))


def _last_line(item: Person | Rejected) -> int:
    if isinstance(item, Person):
        return item.representatives[-1][0] if item.representatives else item.line
    return max(item.last, item.line)


def summary(args: argparse.Namespace, progress: Progress, shown: list[tuple[int, str]], rejects: Path,
            postal: str | None) -> dict[str, Any]:
    seconds = progress.seconds
    return {"roster": str(args.roster), "persons": progress.persons, **progress.counts,
            "notices": progress.notices, "seconds": round(seconds, 3),
            "persons_per_second": round(progress.persons / seconds, 1) if seconds else None,
            "rejects": [{"line": n, "reason": r} for n, r in shown], "rejects_file": str(rejects),
            "postal_file": postal}


def print_summary(report: dict[str, Any]) -> None:
    counts = report
    print(f"enrolment of {report['roster']}: {report['persons']} rows in {report['seconds']:.1f} s"
          + (f" ({report['persons_per_second']:,.0f}/s)" if report["persons_per_second"] else ""))
    print(f"  created    {counts['created']}")
    print(f"  updated    {counts['updated']}")
    print(f"  unchanged  {counts['unchanged']}")
    print(f"  kept       {counts['kept']} (opposed, closed or purged records, left as they are)")
    print(f"  rejected   {counts['rejected']}")
    notices_sent = report["notices"]
    print(f"  notices    {notices_sent['email']} by e-mail (mail queue), {notices_sent['postal']} by post"
          + (f" ({report['postal_file']})" if report["postal_file"] else ""))
    for reject in report["rejects"]:
        print(f"  line {reject['line']}: {reject['reason']}")
    if counts["rejected"] > len(report["rejects"]):
        print(f"  ... all {counts['rejected']} rejected lines: {report['rejects_file']}")


# ------------------------------------------------------------------------------ the two targets


async def _local(args: argparse.Namespace, fmt: str) -> tuple[Run, str]:
    # The server's wiring, imported here only: `fhir-server --help` stays quick.
    from fhir_server.app import open_repository, record_hooks
    from fhir_server.record.enrolment import ID_KEY, Enrolment
    from fhir_server.security.server_keys import server_secret
    from fhir_server.storage.embedded import store_beside_server

    settings = Settings(data_dir=args.data_dir)
    postal = args.postal_out or settings.data_dir / notices.POSTAL_FILE
    identity = roster_identity(args.roster, str(settings.data_dir.resolve()), args.part)
    checkpoint = args.checkpoint or settings.data_dir / CHECKPOINT_DIR / f"{identity[:24]}.json"

    async def no_dispatch(event: dict[str, Any]) -> None:
        """Never called: this process runs no dispatcher; the server's delivers the events."""

    with store_beside_server(settings.data_dir, settings.mongodb_url) as url:
        async with AsyncExitStack() as stack:
            repository, _ = await open_repository(settings, url, record_hooks(settings, no_dispatch))
            stack.push_async_callback(repository.database.close)
            database = repository.database
            await notices.prepare_store(database)
            key_dir = settings.data_dir if database.capabilities.embedded else None
            enrolment = Enrolment(repository, await server_secret(ID_KEY, data_dir=key_dir, db=database.db),
                                  settings.mail_from)

            async def export() -> None:
                await notices.export(database, postal)

            # Rows a crashed run committed but did not export.
            await export()
            progress = Progress(identity) if args.restart else load_checkpoint(checkpoint, identity)
            run = Run(args, enrolment.prepare, enrolment.write, export, checkpoint, fmt, progress)
            await run.run()
    return run, str(postal)


def _remote(args: argparse.Namespace, fmt: str) -> tuple[Run, str | None]:
    base = args.base_url.rstrip("/")
    identity = roster_identity(args.roster, base, args.part)
    checkpoint = args.checkpoint or args.roster.with_name(f".{args.roster.name}.enrol-{identity[:24]}.json")

    async def batch(persons: list[Person]) -> list[Person]:
        return persons

    async def send(persons: list[Person]) -> list[Outcome]:
        body, lines = request_body(persons)
        answer = await asyncio.to_thread(_post, f"{base}/$enrol", body, args.token)
        return outcomes_of(answer, lines)

    async def nothing() -> None:
        return None

    progress = Progress(identity) if args.restart else load_checkpoint(checkpoint, identity)
    run = Run(args, batch, send, nothing, checkpoint, fmt, progress)
    asyncio.run(run.run())
    return run, None


def request_body(persons: list[Person]) -> tuple[bytes, list[int]]:
    """The persons as the NDJSON `$enrol` takes, and the roster line of each request line."""
    out: list[bytes] = []
    lines: list[int] = []
    for person in persons:
        out.append(orjson.dumps(person.patient))
        lines.append(person.line)
        child = {"system": person.ins[0], "value": person.ins[1]}
        for number, _, kept in person.representatives:
            out.append(orjson.dumps({"resourceType": "RelatedPerson", "patient": {"identifier": child}, **kept}))
            lines.append(number)
    return b"\n".join(out) + b"\n", lines


def outcomes_of(answer: dict[str, Any], lines: list[int]) -> list[Outcome]:
    """`$enrol`'s Parameters, one `person` per Patient line, its line numbers mapped back to the roster's."""
    outcomes = []
    for parameter in answer.get("parameter") or []:
        parts = {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in parameter.get("part", [])}
        line = lines[int(parts["line"]) - 1]
        reason = str(parts.get("reason") or "")
        outcomes.append(Outcome(line, str(parts["result"]), _roster_lines(reason, lines), parts.get("notice")))
    return outcomes


def _roster_lines(reason: str, lines: list[int]) -> str:
    """A reason naming a line of the request ("line 3 (...)") names it in the roster instead."""
    if reason.startswith("line ") and (number := reason[5:].split(" ", 1)[0]).isdigit() and int(number) <= len(lines):
        return f"line {lines[int(number) - 1]}" + reason[5 + len(number):]
    return reason


class Refused(Exception):
    """The server refused the request as a whole; the message is one line for the operator."""


def _post(url: str, body: bytes, token: str | None) -> dict[str, Any]:
    headers = {"Content-Type": "application/fhir+ndjson", "Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, method="POST", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:  # noqa: S310 (an operator-given URL)
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as refused:
        try:
            outcome = json.loads(refused.read() or b"{}")
            why = "; ".join(i.get("diagnostics", "") for i in outcome.get("issue", []))
        except ValueError:
            why = refused.reason
        raise Refused(f"the server refused the batch ({refused.code}): {why}") from None


def run(args: argparse.Namespace) -> int:
    if (args.data_dir is None) == (args.base_url is None):
        print("fhir-server enrol: give --data-dir DIR or --base-url URL (with --token)", file=sys.stderr)
        return 2
    if args.batch < 1:
        print("fhir-server enrol: --batch must be at least 1", file=sys.stderr)
        return 2
    try:
        fmt = detect_format(args.roster, args.format)
        if not args.roster.is_file():
            raise ValueError(f"no roster at {args.roster}")
        done, postal = _remote(args, fmt) if args.base_url else asyncio.run(_local(args, fmt))
    except (ValueError, OSError, Refused, urllib.error.URLError) as exc:
        print(f"fhir-server enrol: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fhir-server enrol: interrupted; run the same command again to go on where it stopped",
              file=sys.stderr)
        return 130
    report = summary(args, done.progress, done.shown, done.rejects_path, postal)
    # The roster is done: the next run on it starts from its beginning (and finds it all unchanged).
    done.checkpoint.unlink(missing_ok=True)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print_summary(report)
    return 0
