"""Which professions see which document types: the habilitation matrix of the shared record
(arrêté of 26 October 2023; issue 12, rule 3), read from `policies/habilitations.json`.

A document is stored with one *habilitation class* (`document_class`), a string naming the sorted
set of TRE_G15 profession codes allowed to see its type, such as `h:10,21,40,50,60,70`. Types seen
by the same professions share a class, so there are only a handful of classes and a professional's
query needs one short `$in` on a scalar key (`profession_classes`) instead of one condition per
document type. Resources that are not documents carry the class `*`, which every profession sees.

The classes follow from the file alone: one per distinct set of professions over the listed
types, plus the set that sees a type the matrix does not list (the professions with `sees: all`),
plus the intersections of those sets (a document whose type codings the matrix treats differently
gets the intersection; see `document_class`).
Class ids change when the matrix changes (a profession or a type moves between sets), so after
editing the file the class stored with every DocumentReference must be recomputed: the
re-index belongs to the storage layer, not to this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from fhir_server.config import PROJECT_ROOT

POLICY_FILE = PROJECT_ROOT / "policies" / "habilitations.json"
NOT_A_DOCUMENT = "*"
_PREFIX = "h:"

Coding = tuple[str, str]  # (system, code)


@dataclass(frozen=True)
class Matrix:
    allowed_by_type: dict[Coding, frozenset[str]]  # every listed type -> professions that see it
    allowed_unlisted: frozenset[str]  # who sees a type the matrix does not list, or no type at all
    classes_by_profession: dict[str, tuple[str, ...]]
    # Every class a document can be given, `*` included.
    every_class: frozenset[str]


def class_id(professions: frozenset[str]) -> str:
    # TRE_G15 codes are all two digits, so sorting the strings sorts the codes.
    return _PREFIX + ",".join(sorted(professions))


def load(path: Path) -> Matrix:
    """The matrix in `path`, checked so that a mistyped file raises instead of silently granting
    or withholding documents. The shipped file is read on first use; calling `profession_classes`
    once at startup makes a bad edit stop the server before it serves anyone."""
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    listed = [_coding(entry) for entry in data["documentTypes"]]
    if len(set(listed)) != len(listed):
        raise ValueError(f"{path}: documentTypes lists a type twice")
    allowed: dict[Coding, set[str]] = {coding: set() for coding in listed}
    allowed_unlisted: set[str] = set()
    for profession, rule in data["professions"].items():
        excluded = {_coding(entry) for entry in rule.get("except", [])}
        # Every exception must be a listed type: an exception the matrix does not list would
        # be a typo that removes nothing.
        unknown = excluded - allowed.keys()
        if unknown:
            raise ValueError(f"{path}: profession {profession} excepts types not in documentTypes: {sorted(unknown)}")
        if rule["sees"] == "all":
            allowed_unlisted.add(profession)
        elif rule["sees"] != "documentTypes":
            raise ValueError(f"{path}: profession {profession} sees {rule['sees']!r}; expected 'all' or 'documentTypes'")
        for coding in allowed.keys() - excluded:
            allowed[coding].add(profession)
    allowed_by_type = {coding: frozenset(professions) for coding, professions in allowed.items()}
    every_set = _closed_under_intersection(set(allowed_by_type.values()) | {frozenset(allowed_unlisted)})
    classes_by_profession = {
        profession: tuple(sorted({NOT_A_DOCUMENT} | {class_id(s) for s in every_set if profession in s}))
        for profession in data["professions"]
    }
    every_class = frozenset({NOT_A_DOCUMENT} | {class_id(s) for s in every_set})
    return Matrix(allowed_by_type, frozenset(allowed_unlisted), classes_by_profession, every_class)


def _closed_under_intersection(sets: set[frozenset[str]]) -> set[frozenset[str]]:
    # Without the intersections, a document carrying two listed codings with different sets
    # would get a class no profession's list holds, hidden even from those allowed both types.
    closed = set(sets)
    frontier = set(sets)
    while frontier:
        frontier = {a & b for a in frontier for b in closed} - closed
        closed |= frontier
    return closed


def _coding(entry: dict[str, str]) -> Coding:
    return entry["system"], entry["code"]


@cache
def _matrix() -> Matrix:
    return load(POLICY_FILE)


def document_class(type_codings: list[dict[str, Any]]) -> str:
    """The class of a DocumentReference whose `type.coding` is `type_codings` ([] when it has no type).

    Codings the matrix does not list are ignored (a local code added beside a JDV_J07 code must
    not hide the document). Several listed codings mean the same type in principle; when the
    matrix disagrees on them, only the professions allowed for every one of them see it.
    A document with no listed coding is seen by the professions that see all types.
    """
    matrix = _matrix()
    allowed: frozenset[str] | None = None
    for coding in type_codings:
        professions = matrix.allowed_by_type.get((coding.get("system", ""), coding.get("code", "")))
        if professions is not None:
            allowed = professions if allowed is None else allowed & professions
    return class_id(matrix.allowed_unlisted if allowed is None else allowed)


def profession_classes(profession: str | None) -> tuple[str, ...]:
    """Every class a professional of this TRE_G15 profession may see, sorted, `*` included.
    A profession the matrix does not name sees no document: only `*`."""
    if profession is None:
        return (NOT_A_DOCUMENT,)
    return _matrix().classes_by_profession.get(profession, (NOT_A_DOCUMENT,))


def hidden_classes(profession: str | None) -> tuple[str, ...]:
    """The classes this profession may not see, sorted: the shorter way to say the same thing
    for most professions (a physician's is the residence certificate's alone), and a `$nin` of
    one value costs the store less than an `$in` of six (docs/PERFORMANCE.md). Classes given
    under an earlier matrix are in neither list: documents must be re-classed after a change."""
    return tuple(sorted(_matrix().every_class - set(profession_classes(profession))))
