"""`make mutate` (mutmut) support: which tests judge a mutant.

mutmut runs, for each mutant, the tests it saw reaching the mutated function. Through the
in-process server that is every test whose request passes by (each ITI-65 test reaches the
transaction code), so a surviving mutant would cost the whole suite. `[tool.fhir-server.mutate-tests]`
in pyproject.toml names, per module, the tests written for its rules; only those are kept.
"""

from __future__ import annotations

import os
import tomllib
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Values mutmut gives MUTANT_UNDER_TEST outside a mutant's own run.
NOT_A_MUTANT = {"", "fail", "stats", "list_all_tests"}


@cache
def selection() -> dict[str, tuple[str, ...]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {module: tuple(paths) for module, paths in config["tool"]["fhir-server"]["mutate-tests"].items()}


def tests_for(mutant: str) -> tuple[str, ...] | None:
    """The test paths for a mutant name such as `fhir_server.api.body.x_read_body__mutmut_3`."""
    matches = [module for module in selection() if mutant.startswith(module + ".")]
    return selection()[max(matches, key=len)] if matches else None


def keep_selected(config: pytest.Config, items: list[pytest.Item]) -> None:
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    if mutant in NOT_A_MUTANT:
        return
    paths = tests_for(mutant)
    if paths is None:
        return
    kept = [item for item in items if item.nodeid.startswith(paths)]
    dropped = [item for item in items if item not in kept]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
