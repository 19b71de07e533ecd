"""Synthetic rosters for the enrolment tests and benchmark: persons under the test INS-NIA OID
(urn:oid:1.2.250.1.213.1.4.10, the one the other tests use), with 15-character INS values drawn
from a per-roster prefix so rosters never meet, and e-mail addresses under example.org."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

INS_NIA = "urn:oid:1.2.250.1.213.1.4.10"
ROLE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"


def new_prefix() -> str:
    """Six digits that scope one roster's INS values."""
    return "".join(random.choice("0123456789") for _ in range(6))


def ins(prefix: str, n: int, sex: str = "2") -> str:
    return f"{sex}{prefix}{n:08d}"


def patient(value: str, *, family: str = "Durand", given: str = "Alice", email: str | None = None,
            address: bool = True, birth: str = "1980-01-02", gender: str = "female") -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Patient", "identifier": [{"system": INS_NIA, "value": value}],
                                "name": [{"family": family, "given": [given]}], "birthDate": birth, "gender": gender}
    if email:
        resource["telecom"] = [{"system": "email", "value": email}]
    if address:
        resource["address"] = [{"line": [f"{len(value)} rue des Lilas"], "postalCode": "75011", "city": "Paris",
                                "country": "FR"}]
    return resource


def representative(child: str, value: str, *, code: str = "MTH", email: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "RelatedPerson",
                                "patient": {"identifier": {"system": INS_NIA, "value": child}},
                                "identifier": [{"system": INS_NIA, "value": value}],
                                "relationship": [{"coding": [{"system": ROLE_SYSTEM, "code": code}]}],
                                "name": [{"family": "Durand", "given": ["Claire"]}]}
    if email:
        resource["telecom"] = [{"system": "email", "value": email}]
    return resource


def population(prefix: str, count: int) -> Iterator[dict[str, Any]]:
    """`count` persons: one in ten a minor with a mother; two in three with an e-mail address."""
    for n in range(count):
        value = ins(prefix, n)
        minor = n % 10 == 0
        yield patient(value, given=f"P{n}", email=f"p{n}-{prefix}@example.org" if n % 3 else None,
                      birth="2015-06-07" if minor else "1980-01-02")
        if minor:
            yield representative(value, ins(prefix, n, sex="1")[:-1] + "9")


def write_ndjson(path: Path, lines: Iterator[dict[str, Any] | bytes] | list[dict[str, Any] | bytes]) -> Path:
    with open(path, "wb") as out:
        for line in lines:
            out.write((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n")
    return path
