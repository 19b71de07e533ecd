"""HL7 v2 data types to FHIR data types (CX, EI, XCN, XPN, XAD, XTN, CWE, DTM, NM).

Each converter takes one field repetition (`Value`) and returns FHIR JSON or None when the
repetition holds nothing usable, so maps can apply them to every repetition of a field.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from cda.document_id import from_entity_identifier
from fhir_server.ingest.hl7v2.er7 import Value
from fhir_server.ingest.hl7v2.mapfiles import load_json

_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DTM = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,4})?([+-]\d{4})?$")
_HL7_TABLE = re.compile(r"^HL7\d{4}$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


def table(name: str) -> dict[str, Any]:
    return load_json(f"tables/{name}.json")["map"]


@cache
def _defaults() -> dict[str, Any]:
    return load_json("defaults.json")


def is_oid(text: str) -> bool:
    return bool(_OID.match(text))


def authority_system(hd: Value) -> str:
    """FHIR Identifier.system for an HD (namespace^universal id^universal id type)."""
    namespace, universal, kind = hd.get(1), hd.get(2), hd.get(3).upper()
    if universal and (kind == "ISO" or is_oid(universal)):
        return f"urn:oid:{universal}"
    if universal and (kind == "UUID" or _UUID.match(universal)):
        return f"urn:uuid:{universal.lower()}"
    if universal and kind == "URI":
        return universal
    return _local_system(namespace, universal)


def _local_system(namespace: str, universal: str) -> str:
    """A local authority has no global URI: name it after its namespace and local id, stably."""
    parts = [quote(part, safe="-._~") for part in (namespace, universal) if part]
    return _defaults()["localAuthoritySystemPrefix"] + ":".join(parts) if parts else ""


def _identifier(value: str, system: str, type_code: str) -> dict[str, Any] | None:
    if not value:
        return None
    identifier: dict[str, Any] = {}
    identity = load_json("identity.json")
    ins_type = identity["insTypes"].get(system)
    if ins_type:
        type_concept: dict[str, Any] | None = {"coding": [{"system": identity["insTypeSystem"], "code": ins_type}]}
    else:
        type_concept = table("identifier-type").get(type_code)
    if type_concept:
        identifier["type"] = type_concept
    if system:
        identifier["system"] = system
    identifier["value"] = value
    return identifier


def cx_identifier(v: Value) -> dict[str, Any] | None:
    """CX: id^check digit^check scheme^assigning authority (HD)^identifier type code."""
    return _identifier(v.get(1), authority_system(v.component(4)), v.get(5))


def ei_identifier(v: Value) -> dict[str, Any] | None:
    """EI: entity id^namespace id^universal id^universal id type.

    An entity id that is itself an OID or UUID is globally unique: it becomes an RFC 3986 URN,
    the form document sharing (XDS/MHD) uses for unique ids.
    """
    entity, namespace, universal, kind = v.get(1), v.get(2), v.get(3), v.get(4).upper()
    if not entity:
        return None
    if universal and (kind == "ISO" or is_oid(universal)):
        return {"system": f"urn:oid:{universal}", "value": entity}
    if is_oid(entity):
        return {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{entity}"}
    if _UUID.match(entity):
        return {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{entity.lower()}"}
    system = _local_system(namespace, universal)
    return {"system": system, "value": entity} if system else {"value": entity}


def document_identifier(v: Value) -> dict[str, Any] | None:
    """An EI naming a document (TXA-12, TXA-13, OBR-3): the identity every channel gives that
    document (cda.document_id), else the plain EI identifier."""
    return from_entity_identifier(v.get(1), v.get(3)) or ei_identifier(v)


def xcn_identifier(v: Value) -> dict[str, Any] | None:
    """XCN: id^family^given^second^suffix^prefix^degree^source table^assigning authority^...^id type (13)."""
    return _identifier(v.get(1), authority_system(v.component(9)), v.get(13))


def xcn_name(v: Value) -> dict[str, Any] | None:
    name: dict[str, Any] = {}
    if v.get(2):
        name["family"] = v.get(2)
    given = [g for g in (v.get(3), v.get(4)) if g]
    if given:
        name["given"] = given
    if v.get(6):
        name["prefix"] = [v.get(6)]
    if v.get(5):
        name["suffix"] = [v.get(5)]
    return name or None


def xpn_name(v: Value) -> dict[str, Any] | None:
    """XPN: family^given^second and further given names^suffix^prefix^degree^name type."""
    name: dict[str, Any] = {}
    use = table("name-use").get(v.get(7))
    if use:
        name["use"] = use
    if v.get(1):
        name["family"] = v.get(1)
    given: list[str] = []
    # French birth first names (INS) arrive space-separated in XPN-3, often repeating XPN-2.
    for candidate in [v.get(2), *v.get(3).split(" ")]:
        if candidate and candidate not in given:
            given.append(candidate)
    if given:
        name["given"] = given
    if v.get(5):
        name["prefix"] = [v.get(5)]
    if v.get(4):
        name["suffix"] = [v.get(4)]
    return name if ("family" in name or "given" in name) else None


def _address_parts(v: Value) -> dict[str, Any]:
    address: dict[str, Any] = {}
    lines = [line for line in (v.get(1), v.get(2)) if line]
    if lines:
        address["line"] = lines
    for key, component in (("city", 3), ("state", 4), ("postalCode", 5), ("country", 6), ("district", 9)):
        if v.get(component):
            address[key] = v.get(component)
    return address


def xad_address(v: Value) -> dict[str, Any] | None:
    """XAD: street^other^city^state^zip^country^address type^other geographic^county/parish (INSEE)."""
    if v.get(7) == "BDL":
        return None
    address = _address_parts(v)
    if not address:
        return None
    return {**table("address-use").get(v.get(7), {}), **address}


def xad_birth_place(v: Value) -> dict[str, Any] | None:
    """XAD with type BDL (birth delivery location), as the patient-birthPlace extension."""
    if v.get(7) != "BDL":
        return None
    address = _address_parts(v)
    if not address:
        return None
    return {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace", "valueAddress": address}


def xtn_contact(v: Value) -> dict[str, Any] | None:
    """XTN: formatted^use code^equipment type^email^country^area^local number^...^unformatted (12)."""
    telecom = load_json("tables/telecom.json")
    equipment = v.get(3)
    value = v.get(4) if equipment in ("Internet", "X.400") else (v.get(12) or v.get(1) or v.get(6) + v.get(7))
    if not value:
        value = v.get(4)
    if not value:
        return None
    system = telecom["system"].get(equipment, "email" if "@" in value else "phone")
    contact: dict[str, Any] = {"system": system, "value": value}
    use = "mobile" if equipment in telecom["mobileEquipment"] else telecom["use"].get(v.get(2))
    if use:
        contact["use"] = use
    return contact


def coding_system(name: str) -> str:
    if not name:
        return ""
    if is_oid(name):
        return f"urn:oid:{name}"
    if _HL7_TABLE.match(name):
        return load_json("tables/coding-systems.json")["hl7TableSystem"] + name[3:]
    return table("coding-systems").get(name, "")


def cwe_concept(v: Value) -> dict[str, Any] | None:
    """CWE/CE: code^text^system^alternate code^alternate text^alternate system...^original text (9)."""
    codings = []
    for first in (1, 4):
        code, display, system = v.get(first), v.get(first + 1), v.get(first + 2)
        if not code:
            continue
        coding: dict[str, Any] = {}
        if coding_system(system):
            coding["system"] = coding_system(system)
        coding["code"] = code
        if display:
            coding["display"] = display
        codings.append(coding)
    concept: dict[str, Any] = {}
    if codings:
        concept["coding"] = codings
    text = v.get(9) or (v.get(2) if not codings else "")
    if text:
        concept["text"] = text
    return concept or None


def cwe_coding(v: Value) -> dict[str, Any] | None:
    concept = cwe_concept(v)
    return concept["coding"][0] if concept and "coding" in concept else None


def _dtm_parts(text: str) -> re.Match[str] | None:
    return _DTM.match(text.strip()) if text else None


def dtm_date(v: Value) -> str | None:
    match = _dtm_parts(v.get(1))
    if match is None:
        return None
    return "-".join(part for part in match.groups()[:3] if part)


def dtm_datetime(v: Value) -> str | None:
    """DTM/TS to FHIR dateTime; a time without offset is read in the configured local zone."""
    match = _dtm_parts(v.get(1))
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if hour is None or day is None:
        return dtm_date(v)
    naive = datetime(int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0))
    if offset:
        zone = f"{offset[:3]}:{offset[3:]}"
    else:
        utc_offset = naive.replace(tzinfo=ZoneInfo(_defaults()["timezone"])).utcoffset()
        minutes = int(utc_offset.total_seconds() // 60) if utc_offset else 0
        zone = f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return f"{naive:%Y-%m-%dT%H:%M:%S}{fraction or ''}{zone}"


def dtm_instant(v: Value) -> str | None:
    """FHIR instant needs seconds: a day-precision value becomes midnight local time."""
    value = dtm_datetime(v)
    if value and "T" not in value and len(value) == 10:
        return dtm_datetime(Value(v.get(1)[:8] + "000000", v.delimiters))
    return value if value and "T" in value else None


def number(v: Value) -> int | float | None:
    text = v.get(1).strip().replace(",", ".")
    if not _NUMBER.match(text):
        return None
    return float(text) if "." in text else int(text)


def text(v: Value) -> str | None:
    return v.get(1) or None


def system_uri(v: Value) -> str | None:
    return coding_system(v.get(1)) or None


CONVERTERS = {
    "Identifier": cx_identifier,
    "Identifier.EI": ei_identifier,
    "Identifier.Document": document_identifier,
    "Identifier.XCN": xcn_identifier,
    "HumanName": xpn_name,
    "HumanName.XCN": xcn_name,
    "Address": xad_address,
    "Extension.birthPlace": xad_birth_place,
    "ContactPoint": xtn_contact,
    "CodeableConcept": cwe_concept,
    "Coding": cwe_coding,
    "date": dtm_date,
    "dateTime": dtm_datetime,
    "instant": dtm_instant,
    "decimal": number,
    "string": text,
    "uri.codingSystem": system_uri,
}
