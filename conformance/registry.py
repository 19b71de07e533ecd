"""The test-case registry: each case is a plain function registered with a stable id, its tags and
the requirement it checks. `select` picks cases by id or tag, as `--select` and `--exclude` ask."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conformance.model import Requirement

if TYPE_CHECKING:
    from conformance.session import Session

CaseFunction = Callable[["Session"], None]


@dataclass(frozen=True)
class Case:
    id: str
    title: str
    tags: tuple[str, ...]
    requirement: Requirement
    run: CaseFunction


CASES: dict[str, Case] = {}


def case(id: str, title: str, tags: Iterable[str], spec: str, section: str, text: str) -> Callable[[CaseFunction], CaseFunction]:
    """Registers the decorated function as the test case `id`; ids are unique and never reused."""
    def register(function: CaseFunction) -> CaseFunction:
        if id in CASES:
            raise ValueError(f"two test cases named {id}")
        CASES[id] = Case(id, title, tuple(tags), Requirement(spec, section, text), function)
        return function
    return register


def all_cases() -> list[Case]:
    import conformance.cases  # noqa: F401  (registers every case module)
    return list(CASES.values())


def _matches(case_: Case, word: str) -> bool:
    word = word.strip().lower()
    return case_.id.lower() == word or case_.id.lower().startswith(word + "-") or word in (t.lower() for t in case_.tags)


def select(cases: list[Case], include: list[str], exclude: list[str]) -> list[Case]:
    """Cases matching any `include` word (all when none) and no `exclude` word. A word is an id, an
    id prefix ending at a dash (`FHIR-read` picks `FHIR-read-01`...), or a tag; case-insensitive."""
    chosen = [c for c in cases if not include or any(_matches(c, w) for w in include)]
    return [c for c in chosen if not any(_matches(c, w) for w in exclude)]
