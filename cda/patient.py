"""recordTarget/patientRole -> Patient, found or created by its INS (else its local IPP)."""

from lxml import etree

from cda.datatypes import every, first, oid_uri, text, timestamp
from cda.errors import CdaError
from cda.ids import full_url
from cda.mappings import table


def patient_identifiers(patient_role: etree._Element) -> list[dict]:
    """INS identifiers first, then local ones (IPP under the facility's assigning-authority OID)."""
    systems = table("identifier_systems")
    national, local = [], []
    for ii in every(patient_role, "id"):
        root, extension = ii.get("root"), ii.get("extension")
        if not root or not extension or ii.get("nullFlavor"):
            continue
        ins_type = systems["ins"].get(root)
        if ins_type:
            identifier_type = {"system": systems["ins_type_system"], "code": ins_type}
        else:
            identifier_type = dict(systems["local_type"])
        entry = {
            "use": "official" if ins_type else "usual",
            "type": {"coding": [identifier_type]},
            "system": oid_uri(root),
            "value": extension,
        }
        (national if ins_type else local).append(entry)
    return national + local


def _names(patient: etree._Element | None) -> list[dict]:
    """Birth names (qualifier BR) are the official name, used names (CL) the usual name."""
    names = []
    for pn in every(patient, "name"):
        groups: dict[str, dict] = {}
        for part in pn:
            kind = etree.QName(part).localname
            value = text(part)
            if kind not in ("family", "given", "prefix", "suffix") or not value:
                continue
            use = {"BR": "official", "CL": "usual"}.get(part.get("qualifier", ""), "")
            name = groups.setdefault(use, {})
            if kind == "family":
                name.setdefault("family", value)
            else:
                name.setdefault(kind, []).append(value)
        # Parts without a qualifier complete the birth name (the full list of birth first names).
        unqualified = groups.pop("", None)
        if unqualified:
            official = groups.setdefault("official", {})
            official.setdefault("family", unqualified.get("family"))
            if "given" in unqualified:
                official["given"] = unqualified["given"]
            for kind in ("prefix", "suffix"):
                if kind in unqualified:
                    official[kind] = unqualified[kind]
        for use, name in groups.items():
            name = {key: value for key, value in name.items() if value}
            if name:
                names.append({"use": use, **name})
    return names


def patient_resource(record_target: etree._Element | None, warnings: list[str]) -> dict:
    """The Patient of the document; CdaError no-patient when it carries no usable identity."""
    patient_role = first(record_target, "patientRole")
    identifiers = patient_identifiers(patient_role) if patient_role is not None else []
    if not identifiers:
        raise CdaError("no-patient", "recordTarget/patientRole has no identifier (INS or IPP)")
    patient = first(patient_role, "patient")
    resource: dict = {"resourceType": "Patient", "identifier": identifiers}
    if names := _names(patient):
        resource["name"] = names
    gender_code = first(patient, "administrativeGenderCode")
    if gender_code is not None and gender_code.get("code"):
        gender = table("administrative_gender").get(gender_code.get("code"))
        if gender:
            resource["gender"] = gender
        else:
            warnings.append(f"Patient: unknown administrativeGenderCode {gender_code.get('code')!r}")
    birth_time = first(patient, "birthTime")
    if birth_time is not None and (birth := timestamp(birth_time.get("value"), warnings, "birthTime")):
        resource["birthDate"] = birth[:10]
    return resource


def patient_entry(record_target: etree._Element | None, warnings: list[str]) -> dict:
    """Conditional create of the Patient by its first identifier (INS when there is one)."""
    patient = patient_resource(record_target, warnings)
    key = patient["identifier"][0]
    return {
        "fullUrl": full_url("Patient", key["system"], key["value"]),
        "resource": patient,
        "request": {
            "method": "POST",
            "url": "Patient",
            "ifNoneExist": f"identifier={key['system']}|{key['value']}",
        },
    }
