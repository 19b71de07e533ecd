"""An insurer's roster, read as a stream of persons: each a Patient line followed by the
RelatedPerson lines of its legal representatives (README, "Enrolment"), with where it starts and
ends in the file, so a run can stop after any person and resume at the next.

Two formats, one meaning:
- NDJSON (`.ndjson`, `.jsonl`): one FHIR R4 resource a line, Patient or RelatedPerson;
- CSV (`.csv`): a header line with the columns of `CSV_COLUMNS`, then one person (or one legal
  representative, `represents_ins` set) a line; each row becomes the resource the NDJSON line
  would be.

A line that cannot be a person is rejected here with its number and why, before any store work.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from fhir_server.access.records import INS_SYSTEMS, REPRESENTATIVE_ROLES

ROLE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
# INS: the NIR's 13 characters (2A/2B for Corsica) and its 2-digit key (ANS, Référentiel INS).
INS_VALUE = re.compile(r"[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{8}")
# What a Patient of the roster brings; anything else on the line is not the insurer's to set.
PATIENT_ELEMENTS = ("identifier", "name", "telecom", "gender", "birthDate", "address")
REPRESENTATIVE_ELEMENTS = ("identifier", "relationship", "name", "telecom", "gender", "birthDate", "address")
CSV_COLUMNS = ("ins", "ins_oid", "family", "given", "birth_date", "gender", "email", "phone", "address_line",
               "postal_code", "city", "country", "represents_ins", "relationship")
CSV_REQUIRED = ("ins", "family", "given")


class RowError(ValueError):
    """A line that is not a person or a representative; the message says why, for the summary."""


class RepresentativeError(RowError):
    """A legal representative's line of the person before it that cannot be taken: the person
    goes with it, so a person is never enrolled without a representative the roster gives."""


@dataclass
class Line:
    number: int
    start: int
    end: int
    resource: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class Person:
    """A Patient line and the legal representatives' lines that follow it."""
    line: int
    start: int
    end: int
    ins: tuple[str, str]
    patient: dict[str, Any]
    representatives: list[tuple[int, tuple[str, str], dict[str, Any]]] = field(default_factory=list)


@dataclass
class Rejected:
    line: int
    start: int
    end: int
    reason: str
    # The person the line is about (a Patient line's INS), for --part to route its rejection.
    ins: tuple[str, str] | None = None
    # The number of the last line it covers (a person rejected with a representative's line).
    last: int = 0


def detect_format(path: Path, given: str | None) -> str:
    if given:
        return given
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".ndjson", ".jsonl", ".json"):
        return "ndjson"
    raise ValueError(f"cannot tell the format of {path.name} from its name: pass --format ndjson or csv")


def ins_of(identifiers: Any) -> tuple[str, str]:
    """The (system, value) of the INS among `identifiers`; RowError when there is none, or a wrong one."""
    found = [(i.get("system"), i.get("value")) for i in identifiers if isinstance(i, dict)] \
        if isinstance(identifiers, list) else []
    ins = [(s, v) for s, v in found if s in INS_SYSTEMS]
    if not ins:
        others = sorted({str(s) for s, _ in found if s})
        raise RowError("no INS identifier (system " + " or ".join(INS_SYSTEMS) + ")"
                       + (f"; found {', '.join(others)}" if others else ""))
    if len({v for _, v in ins}) > 1:
        raise RowError("more than one INS")
    system, value = ins[0]
    if not isinstance(value, str) or not INS_VALUE.fullmatch(value):
        raise RowError(f"INS value {value!r} is not 15 characters of an INS (NIR and key)")
    return system, value


def _lines(stream: BinaryIO, offset: int, first_number: int) -> Iterator[tuple[int, int, int, bytes]]:
    """(number, start, end, text) of each line from `offset`, blank lines skipped."""
    stream.seek(offset)
    number, position = first_number, offset
    for raw in stream:
        start, position = position, position + len(raw)
        number += 1
        if raw.strip():
            yield number, start, position, raw


def _ndjson(raw: bytes) -> dict[str, Any]:
    try:
        resource = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RowError(f"not JSON: {exc}") from None
    if not isinstance(resource, dict):
        raise RowError("not a JSON object")
    return resource


def csv_header(raw: bytes) -> list[str]:
    header = [c.strip().lower() for c in next(csv.reader([raw.decode("utf-8-sig")]))]
    unknown = sorted(set(header) - set(CSV_COLUMNS))
    missing = sorted(set(CSV_REQUIRED) - set(header))
    if unknown or missing:
        raise ValueError("the CSV header " + "; ".join(
            ([f"has unknown columns {', '.join(unknown)}"] if unknown else [])
            + ([f"lacks {', '.join(missing)}"] if missing else []))
            + f" (columns: {', '.join(CSV_COLUMNS)})")
    return header


def csv_resource(header: list[str], raw: bytes) -> dict[str, Any]:
    """The Patient (or RelatedPerson, when `represents_ins` is set) a CSV row stands for."""
    try:
        cells = next(csv.reader([raw.decode("utf-8")]))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise RowError(f"not a CSV row: {exc}") from None
    if len(cells) != len(header):
        raise RowError(f"{len(cells)} cells where the header has {len(header)}")
    row = {name: cell.strip() for name, cell in zip(header, cells, strict=True)}
    system = row.get("ins_oid") or INS_SYSTEMS[0]
    if not system.startswith("urn:oid:"):
        system = "urn:oid:" + system
    resource: dict[str, Any] = {"identifier": [{"system": system, "value": row["ins"]}]}
    if row.get("family") or row.get("given"):
        name: dict[str, Any] = {}
        if row.get("family"):
            name["family"] = row["family"]
        if row.get("given"):
            name["given"] = row["given"].split()
        resource["name"] = [name]
    if row.get("gender"):
        resource["gender"] = row["gender"]
    if row.get("birth_date"):
        resource["birthDate"] = row["birth_date"]
    telecom = [{"system": s, "value": row[c]} for s, c in (("email", "email"), ("phone", "phone")) if row.get(c)]
    if telecom:
        resource["telecom"] = telecom
    address = {k: v for k, v in (("line", [row["address_line"]] if row.get("address_line") else None),
                                 ("postalCode", row.get("postal_code")), ("city", row.get("city")),
                                 ("country", row.get("country"))) if v}
    if address:
        resource["address"] = [address]
    if row.get("represents_ins"):
        resource["resourceType"] = "RelatedPerson"
        resource["patient"] = {"identifier": {"system": system, "value": row["represents_ins"]}}
        code = row.get("relationship") or "PRN"
        resource["relationship"] = [{"coding": [{"system": ROLE_SYSTEM, "code": code}]}]
    else:
        if row.get("relationship"):
            raise RowError("relationship is given without represents_ins")
        resource["resourceType"] = "Patient"
    return resource


def _representative(resource: dict[str, Any], child: tuple[str, str] | None) -> tuple[tuple[str, str], dict[str, Any]]:
    """(the representative's INS, what is kept of the line), checked against the child before it."""
    target = (resource.get("patient") or {}).get("identifier") if isinstance(resource.get("patient"), dict) else None
    named = ins_of([target]) if isinstance(target, dict) else None
    if named is None:
        raise RowError("a RelatedPerson must name its child by INS in patient.identifier")
    if child is None or named != child:
        raise RowError(f"RelatedPerson for child INS {named[1]}, which is not the Patient line before it")
    try:
        ins = ins_of(resource.get("identifier"))
    except RowError as exc:
        raise RepresentativeError(str(exc)) from None
    roles = {c.get("code") for r in resource.get("relationship") or [] if isinstance(r, dict)
             for c in r.get("coding") or [] if isinstance(c, dict) and c.get("system") == ROLE_SYSTEM}
    if not roles & REPRESENTATIVE_ROLES:
        raise RepresentativeError(f"relationship must be a {ROLE_SYSTEM} code of a legal representative "
                       f"({', '.join(sorted(REPRESENTATIVE_ROLES))})")
    if ins == child:
        raise RepresentativeError("a person cannot be their own legal representative")
    return ins, {k: resource[k] for k in REPRESENTATIVE_ELEMENTS if k in resource}


def read(path: Path, fmt: str, offset: int = 0, first_number: int = 0) -> Iterator[Person | Rejected]:
    """The roster's persons and rejected lines from byte `offset` (the start of a person's line,
    numbered `first_number + 1`), in file order: each as soon as the line after it is read."""
    with open(path, "rb") as stream:
        yield from read_stream(stream, fmt, offset, first_number)


def read_stream(stream: BinaryIO, fmt: str, offset: int = 0, first_number: int = 0) -> Iterator[Person | Rejected]:
    header: list[str] | None = None
    if fmt == "csv":
        stream.seek(0)
        first = stream.readline()
        header = csv_header(first)
        if offset == 0:
            offset, first_number = len(first), 1
    person: Person | None = None
    # The INS of the person just rejected for a representative's line: their next ones say so.
    dropped: tuple[str, str] | None = None
    for number, start, end, raw in _lines(stream, offset, first_number):
        try:
            resource = csv_resource(header, raw) if header is not None else _ndjson(raw)
            kind = resource.get("resourceType")
            if kind == "Patient":
                ins = ins_of(resource.get("identifier"))
            elif kind == "RelatedPerson":
                rep_ins, kept = _representative(resource, person.ins if person else None)
                assert person is not None
                person.representatives.append((number, rep_ins, kept))
                person.end = end
                continue
            else:
                raise RowError(f"a {kind or 'line without resourceType'} is neither a Patient nor a RelatedPerson")
        except RepresentativeError as exc:
            assert person is not None
            # A bad representative line makes its person wrong as a whole: never half-written.
            yield Rejected(person.line, person.start, end,
                           f"line {number} (a legal representative): {exc}", person.ins, number)
            dropped, person = person.ins, None
            continue
        except RowError as exc:
            if dropped is not None and _names_child(raw, header) == dropped:
                exc = RowError(f"the legal representative of a person rejected above: {exc}")
            if person is not None:
                # In file order: a run resumes after the last thing it handled.
                yield person
                person = None
            yield Rejected(number, start, end, str(exc))
            continue
        dropped = None
        if person is not None:
            yield person
        person = Person(number, start, end, ins, {"resourceType": "Patient",
                                                  **{k: resource[k] for k in PATIENT_ELEMENTS if k in resource}})
    if person is not None:
        yield person


def _names_child(raw: bytes, header: list[str] | None) -> tuple[str, str] | None:
    """The child a line that failed names, when it is a RelatedPerson that names one."""
    try:
        resource = csv_resource(header, raw) if header is not None else _ndjson(raw)
        target = (resource.get("patient") or {}).get("identifier")
        return ins_of([target]) if resource.get("resourceType") == "RelatedPerson" else None
    except (RowError, AttributeError):
        return None
