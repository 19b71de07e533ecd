"""The serving process's garbage collector (issue 18): once start-up is over, what it made is frozen
and the young generation is collected less often (fhir_server.cli.settle_heap). Run in a process of
its own: the tuning is for the whole process, and this one runs the other tests."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json
from fhir_server.cli import YOUNG_COLLECTION_THRESHOLD, settle_heap
kept = [[n] for n in range(1000)]
garbage = []
garbage.append(garbage)
del garbage
gc.disable()  # the probe's own collections would not tell what settle_heap did
before = gc.get_freeze_count()
settle_heap()
print(json.dumps({"threshold": gc.get_threshold(), "frozen_before": before, "frozen": gc.get_freeze_count(),
                  "young": YOUNG_COLLECTION_THRESHOLD, "kept": len(kept)}))
"""


def test_start_up_objects_are_frozen_and_young_collections_are_rarer() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    seen = json.loads(result.stdout)
    assert seen["frozen_before"] == 0
    # Everything alive at the end of start-up (at least the probe's 1,000 lists) is out of the collector's passes.
    assert seen["frozen"] > 1000
    assert seen["threshold"][0] == seen["young"] == 10_000
    # The older generations keep Python's own thresholds.
    assert seen["threshold"][1:] == [10, 10]
