"""One line and one count per document or message taken in (`ingest`, fhir_server.ingest): per HL7 v2
message received over MLLP its control id, message type, the ACK code answered and, when refused,
the error (ERR-3 condition and ERR-8 text, which say what is wrong with the message, not what it
holds); per `POST /ingest/*` the channel and outcome (the request line has the rest)."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.errors import FhirError
from fhir_server.ingest import dry_run
from fhir_server.ingest.mllp import Handler
from fhir_server.observability import context, metrics
from fhir_server.observability.logs import event

log = logging.getLogger("fhir_server.ingest")
# The outcome of an ingest request with `?_dryRun=true`: nothing was stored, nor refused for real.
DRY_RUN = "dry-run"
Endpoint = Callable[[Request], Awaitable[Response]]
# An ERR-8 longer than this is cut in the line.
LONGEST_ERROR = 300


@dataclass(frozen=True)
class Segments:
    """The fields of a message's (or ACK's) first segment of each kind, read tolerantly."""

    fields: dict[str, list[str]]
    component: str

    @classmethod
    def read(cls, message: bytes) -> Segments:
        text = message.decode("latin-1")
        start = text.find("MSH")
        if start < 0 or len(text) < start + 8:
            return cls({}, "^")
        separator, component = text[start + 3], text[start + 4]
        found: dict[str, list[str]] = {}
        for segment in text[start:].replace("\n", "\r").split("\r"):
            fields = segment.split(separator)
            found.setdefault(fields[0], fields)
        return cls(found, component)

    def get(self, segment: str, number: int) -> str:
        """SEG-n (MSH-n counts the separator as MSH-1)."""
        fields = self.fields.get(segment, [])
        index = number - 1 if segment == "MSH" else number
        return fields[index] if 0 <= index < len(fields) else ""


def observed(handler: Handler) -> Handler:
    """`handler`, each message of which is logged and counted once answered."""

    async def handle(message: bytes) -> bytes:
        context.begin(uuid.uuid4().hex)
        started = time.perf_counter()
        ack = await handler(message)
        received = Segments.read(message)
        message_type = "^".join(received.get("MSH", 9).split(received.component)[:2])
        answer = ack_fields(ack)
        observed_metrics = metrics.current()
        if observed_metrics is not None:
            observed_metrics.mllp_message(message_type, answer["ack"] or "")
        ingested("mllp", outcome(answer["ack"] or ""), message_type=message_type[:16] or None, **answer,
                 duration_ms=round((time.perf_counter() - started) * 1000, 2))
        return ack

    return handle


def ack_fields(ack: bytes) -> dict[str, str | None]:
    """What an acknowledgement says: the control id it answers, its code, and the error if any."""
    answered = Segments.read(ack)
    error = answered.get("ERR", 8) or answered.get("MSA", 3)
    return {"control_id": answered.get("MSA", 2)[:64] or None, "ack": answered.get("MSA", 1)[:2] or None,
            "error_condition": answered.get("ERR", 3).split(answered.component)[0][:8] or None,
            "error": error[:LONGEST_ERROR] or None}


@contextlib.contextmanager
def attempt(channel: str) -> Iterator[None]:
    """Taking in one document of `channel` (e.g. an ITI-65 bundle): `ingest` stored when the block
    ends, refused or failed when it raises."""
    try:
        yield
    except FhirError as error:
        ingested(channel, "refused" if error.status < 500 else "failed", status=error.status)
        raise
    except Exception:
        ingested(channel, "failed", status=500)
        raise
    ingested(channel, "stored")


def counted(channel: str) -> Callable[[Endpoint], Endpoint]:
    """An ingest route (`POST /ingest/...`) whose every answer is an `ingest` line and a count:
    201 stored, 200 already there (an HL7 v2 AA), a refusal by its status."""
    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def route(request: Request) -> Response:
            # A dry run (fhir_server.ingest.dry_run) takes nothing in: counted apart, whatever it answers.
            rehearsal = request.query_params.get(dry_run.PARAMETER) == "true"
            try:
                response = await endpoint(request)
            except FhirError as error:
                ingested(channel, DRY_RUN if rehearsal else "refused" if error.status < 500 else "failed",
                         status=error.status)
                raise
            except Exception:
                ingested(channel, "failed", status=500)
                raise
            status = response.status_code
            fields = ack_fields(bytes(response.body)) if channel == "hl7v2" and not rehearsal else {}
            result = (DRY_RUN if rehearsal and status < 500
                      else "stored" if status == 201 or fields.get("ack") == "AA" else "duplicate" if status == 200
                      else "refused" if status < 500 else "failed")
            ingested(channel, result, status=status, **fields)
            return response

        return route

    return decorate


def ingested(channel: str, result: str, /, **fields: object) -> None:
    """A document or message of `channel` (mllp, hl7v2, cda) was taken in with `result` (stored,
    duplicate, refused, failed; dry-run: only tried): one `ingest` line, one count."""
    observed_metrics = metrics.current()
    if observed_metrics is not None:
        observed_metrics.ingest(channel, result)
    event(log, "ingest", logging.INFO if result in ("stored", "duplicate", DRY_RUN) else logging.WARNING,
          channel=channel, outcome=result, **fields)


def outcome(ack_code: str) -> str:
    """An ingest's outcome as counted: stored (AA), refused by the sender's fault (AR), or not stored (AE)."""
    return {"AA": "stored", "CA": "stored", "AR": "refused", "CR": "refused"}.get(ack_code, "failed")
