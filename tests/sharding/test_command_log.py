"""The recorder's rendering and request labels (fhir_server/storage/command_log.py); what it records
from a running server is tested by test_pinned_commands.py."""

from __future__ import annotations

import asyncio
import datetime
import uuid

from bson import Binary, ObjectId, Regex

from fhir_server.storage import command_log


def test_bson_values_render_as_the_equalities_they_are() -> None:
    oid = ObjectId()
    moment = datetime.datetime(2026, 12, 5, 13, 0, tzinfo=datetime.UTC)
    rendered = command_log.plain({"_id": oid, "ts": moment, "res": b"\x00" * 10, "b": Binary(b"ab"),
                                  "name": Regex("^Du"), "u": uuid.UUID(int=1), "in": (1, None, True),
                                  "text": "x" * 500})
    assert rendered == {"_id": str(oid), "ts": "2026-12-05T13:00:00+00:00", "res": "<10 bytes>", "b": "<2 bytes>",
                        "name": {"$regex": "^Du"}, "u": "00000000-0000-0000-0000-000000000001", "in": [1, None, True],
                        "text": "x" * command_log.LONGEST_TEXT + "..."}


def test_a_request_label_stays_with_its_task_and_the_tasks_it_starts() -> None:
    async def label() -> str | None:
        await asyncio.sleep(0.01)
        return command_log.current_request()

    async def request(name: str) -> tuple[str | None, str | None]:
        command_log.attribute(name)
        started = asyncio.create_task(label())
        await asyncio.sleep(0)
        return command_log.current_request(), await started

    async def main() -> list[tuple[str | None, str | None]]:
        # A worker started before any request (as the dispatcher is, at start-up) sees none.
        worker = asyncio.create_task(label())
        answers = await asyncio.gather(request("GET /fhir/a"), request("MLLP R01 1"))
        return [*answers, (await worker, command_log.current_request())]

    assert asyncio.run(main()) == [("GET /fhir/a", "GET /fhir/a"), ("MLLP R01 1", "MLLP R01 1"), (None, None)]


def test_off_unless_a_file_is_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert command_log.listeners(None) == []
    [recorder] = command_log.listeners(tmp_path / "commands.jsonl")
    assert isinstance(recorder, command_log.CommandRecorder)
