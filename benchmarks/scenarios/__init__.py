"""The measured paths, in the order they run: limits first (nothing written yet), then searches,
then the paths that write, then the mixed load."""

from benchmarks.scenarios import ingest, limits, mixed, rest, search
from benchmarks.scenarios.base import Scenario

ALL: list[Scenario] = [*limits.SCENARIOS, *search.LIMITS, *search.SCENARIOS, *rest.SCENARIOS,
                       *ingest.SCENARIOS, *mixed.SCENARIOS]
