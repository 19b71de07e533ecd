"""The serving process's garbage collector (issue 18): once the app's start-up is over, and before
it serves, what start-up made is frozen and the young generation is collected less often
(fhir_server.cli.settle_heap, put at the end of the app's lifespan start-up by `settled`). Run in a
process of its own: the tuning is for the whole process, and this one runs the other tests."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import asyncio, gc, json
from contextlib import asynccontextmanager
from fastapi import FastAPI
from fhir_server.cli import YOUNG_COLLECTION_THRESHOLD, settled
seen = {}

@asynccontextmanager
async def start_up(app):
    app.state.kept = [[n] for n in range(1000)]  # what a start-up makes
    seen["frozen_during_start_up"] = gc.get_freeze_count()
    yield

async def serve(app):
    async with app.router.lifespan_context(app):
        seen["frozen"] = gc.get_freeze_count()
        seen["threshold"] = gc.get_threshold()

gc.disable()  # the probe's own collections would not tell what settle_heap did
asyncio.run(serve(settled(FastAPI(lifespan=start_up))))
print(json.dumps({**seen, "young": YOUNG_COLLECTION_THRESHOLD}))
"""


def test_start_up_objects_are_frozen_and_young_collections_are_rarer() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    seen = json.loads(result.stdout)
    assert seen["frozen_during_start_up"] == 0
    # Everything alive at the end of start-up (at least its 1,000 lists) is out of the collector's passes.
    assert seen["frozen"] > 1000
    assert seen["threshold"][0] == seen["young"] == 10_000
    # The older generations keep Python's own thresholds.
    assert seen["threshold"][1:] == [10, 10]
