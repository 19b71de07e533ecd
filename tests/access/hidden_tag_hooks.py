"""Hooks a test server loads through FHIR_HOOKS (fhir_server.storage.hooks), to show that the
hooks are the only path:

- search filter: resources tagged `HIDDEN` do not exist for anyone;
- resource read: every resource leaving the server gets the `SHOWN` tag, so a test sees which
  paths passed the hook;
- after commit: each outbox event is appended as a JSON line to the file named by
  TEST_OUTBOX_FILE; while the file named by TEST_OUTBOX_REFUSE exists the hook fails, as a
  consumer that is down would, and the events stay in the outbox; TEST_OUTBOX_DELAY (seconds)
  makes each delivery slow, as a remote consumer's would be.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from fhir_server.security.callers import Caller
from fhir_server.storage.hooks import Hooks

TAG_SYSTEM = "http://example.org/fhir-server/tests"
HIDDEN = {"system": TAG_SYSTEM, "code": "hidden-by-hook"}
SHOWN = {"system": TAG_SYSTEM, "code": "shown-by-hook"}


def hide_tagged(caller: Caller, resource_type: str | None) -> dict[str, Any]:
    return {"$nor": [{"res.meta.tag.code": HIDDEN["code"]}]}


def mark_shown(caller: Caller, resource: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SHOWN]
    return {**resource, "meta": meta}


async def record_event(event: dict[str, Any]) -> None:
    refuse = os.environ.get("TEST_OUTBOX_REFUSE")
    if refuse and Path(refuse).exists():
        raise RuntimeError("the test consumer is down")
    await asyncio.sleep(float(os.environ.get("TEST_OUTBOX_DELAY", "0")))
    target = os.environ.get("TEST_OUTBOX_FILE")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(json.dumps({k: event.get(k) for k in ("_id", "kind", "method", "rid", "vid", "pat")}) + "\n")


def register(hooks: Hooks) -> None:
    hooks.search_filters.append(hide_tagged)
    hooks.resource_reads.append(mark_shown)
    hooks.after_commits.append(record_event)
