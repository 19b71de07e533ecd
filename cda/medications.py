"""Prescribed lines (eP-MED-DM prescription, LDL-SES discharge treatments) -> MedicationRequest."""

from dataclasses import dataclass

from lxml import etree

from cda.datatypes import (
    V3, UCUM, codeable_concept, coding, every, first, human_name, identifier, number,
    original_text, system_uri, text,
)
from cda.dosage import dosage
from cda.ids import full_url, resource_id
from cda.mappings import table
from cda.narrative import section_narrative

_PHARM = "{urn:ihe:pharm:medication}"
_SECTION = f"{{{V3}}}section"
_EDQM = "0.4.0.127.0.16.1.1.2.1"
# FHIR integer and unsignedInt are 32-bit.
_MAX_INTEGER = 2**31 - 1
# Dosage elements a subordinate administration inherits from its parent line.
_INHERITED = ("route", "site", "maxDosePerPeriod")


@dataclass(frozen=True)
class PrescriptionContext:
    """What every MedicationRequest of one document shares."""

    key: str
    patient_url: str
    document_url: str
    encounter_url: str | None
    authored_on: str | None
    requester: dict | None
    group_identifier: dict | None
    validity: dict | None


def requester(root: etree._Element) -> dict | None:
    """The prescriber: the serviceEvent performer of a prescription, else the first author, as a
    logical reference by RPPS (a contained resource cannot be shared across resources)."""
    entity = first(root, "documentationOf/serviceEvent/performer/assignedEntity")
    if entity is None:
        entity = first(root, "author/assignedAuthor")
    if entity is None:
        return None
    reference: dict = {"type": "Practitioner"}
    if found := identifier(first(entity, "id")):
        reference["identifier"] = found
    if name := human_name(first(entity, "assignedPerson/name")):
        display = " ".join([*name.get("given", []), name.get("family", "")]).strip()
        reference["display"] = display or name.get("text", "")
    return reference if len(reference) > 1 else None


def _substitution(act: etree._Element, narrative: dict[str, str]) -> dict | None:
    """FR-Autorisation-Substitution: the code is the rule, its originalText the prescriber's reason."""
    concept = codeable_concept(first(act, "code"), narrative) or {}
    reason = concept.pop("text", None)
    if not concept:
        return None
    rule: dict = {"allowedCodeableConcept": concept}
    if reason:
        rule["reason"] = {"text": reason}
    return rule


def _related_acts(administration: etree._Element, narrative: dict[str, str]) -> dict:
    """Patient instructions, quantity to dispense and substitution rule of one prescribed line,
    recognised by the templateId of the act under entryRelationship."""
    templates = table("medication_sections")["entry_templates"]
    found: dict = {}
    for relationship in every(administration, "entryRelationship"):
        for act in relationship.iterchildren(tag=etree.Element):
            roots = {t.get("root") for t in every(act, "templateId")}
            if templates["patient_instructions"] in roots:
                if instruction := original_text(first(act, "text"), narrative):
                    found["patient_instructions"] = instruction
            elif templates["quantity"] in roots:
                if amount := _dispense_quantity(act):
                    found["quantity"] = amount
            elif templates["substitution"] in roots:
                if rule := _substitution(act, narrative):
                    found["substitution"] = rule
    return found


def _medication(administration: etree._Element, narrative: dict[str, str]) -> dict | None:
    material = first(administration, "consumable/manufacturedProduct/manufacturedMaterial")
    if material is None:
        return None
    concept = codeable_concept(first(material, "code"), narrative) or {}
    codings = concept.get("coding", [])
    generic = material.find(f"{_PHARM}asSpecializedKind/{_PHARM}generalizedMedicineClass/{_PHARM}code")
    substances = [generic] if generic is not None else []
    if not codings:
        # Prescription by substance: the active ingredients carry the codes.
        substances += material.findall(f"{_PHARM}ingredient/{_PHARM}ingredient/{_PHARM}code")
    codings += [c for c in map(coding, substances) if c and c not in codings]
    if codings:
        concept["coding"] = codings
    name = first(material, "name")
    if "text" not in concept and name is not None and not name.get("nullFlavor") and (value := text(name)):
        concept["text"] = value
    return concept or None


def _dispense_quantity(supply: etree._Element) -> dict | None:
    amount = first(supply, "quantity")
    value = number(amount.get("value")) if amount is not None else None
    if value is None:
        return None
    unit = amount.get("unit")
    if not unit or unit == "1":
        return {"value": value}
    # CI-SIS counts packages with EDQM packaging codes (all digits), anything else is UCUM.
    system = system_uri(_EDQM) if unit.isdigit() else UCUM
    return {"value": value, "unit": unit, "system": system, "code": unit}


def _dosages(
    administration: etree._Element, narrative: dict[str, str], warnings: list[str]
) -> list[dict]:
    parent = dosage(administration, narrative, warnings)
    subordinates = []
    for relationship in every(administration, "entryRelationship"):
        sub = first(relationship, "substanceAdministration")
        if sub is None or relationship.get("typeCode") != "COMP":
            continue
        part = dosage(sub, narrative, warnings)
        sequence = first(relationship, "sequenceNumber")
        position = number(sequence.get("value")) if sequence is not None else None
        if isinstance(position, int) and 0 <= position <= _MAX_INTEGER:
            part = {"sequence": position, **part}
        subordinates.append(part)
    if not subordinates:
        return [parent] if parent else []
    # Tapered or split doses: each phase is a Dosage completed by what the parent line states once.
    for part in subordinates:
        for key in _INHERITED:
            if key in parent and key not in part:
                part[key] = parent[key]
        repeat = part.setdefault("timing", {}).setdefault("repeat", {})
        if "boundsPeriod" not in repeat and "boundsDuration" not in repeat:
            parent_bounds = parent.get("timing", {}).get("repeat", {}).get("boundsPeriod")
            if parent_bounds:
                repeat["boundsPeriod"] = parent_bounds
        if not repeat:
            del part["timing"]
    if "text" in parent and "text" not in subordinates[0]:
        subordinates[0] = {"text": parent["text"], **subordinates[0]}
    return subordinates


def _medication_request(
    administration: etree._Element,
    line: int,
    rules: dict,
    narrative: dict[str, str],
    context: PrescriptionContext,
    warnings: list[str],
) -> dict | None:
    medication = _medication(administration, narrative)
    if medication is None:
        warnings.append(f"prescribed line {line}: no medication, skipped")
        return None
    rid = resource_id(context.key, "med", str(line))
    resource: dict = {"resourceType": "MedicationRequest", "id": rid}
    if line_id := identifier(first(administration, "id")):
        resource["identifier"] = [line_id]
    if context.group_identifier and rules["intent"] == "order":
        resource["groupIdentifier"] = context.group_identifier
    resource.update(
        status=rules["status"],
        intent=rules["intent"],
        medicationCodeableConcept=medication,
        subject={"reference": context.patient_url},
    )
    if context.encounter_url:
        resource["encounter"] = {"reference": context.encounter_url}
    resource["supportingInformation"] = [{"reference": context.document_url}]
    if context.authored_on:
        resource["authoredOn"] = context.authored_on
    if context.requester:
        resource["requester"] = context.requester
    dosages = _dosages(administration, narrative, warnings)
    related = _related_acts(administration, narrative)
    if instruction := related.get("patient_instructions"):
        if not dosages:
            dosages.append({})
        dosages[0]["patientInstruction"] = instruction
    dispense: dict = {}
    if amount := related.get("quantity"):
        dispense["quantity"] = amount
    if dosages:
        resource["dosageInstruction"] = dosages
    if rules["validity_from_service_event"] and context.validity:
        dispense["validityPeriod"] = context.validity
    repeats = first(administration, "repeatNumber")
    count = number(repeats.get("value")) if repeats is not None else None
    if isinstance(count, int) and 0 <= count <= _MAX_INTEGER:
        dispense["numberOfRepeatsAllowed"] = count
    if dispense:
        resource["dispenseRequest"] = dispense
    if substitution := related.get("substitution"):
        resource["substitution"] = substitution
    return {
        "fullUrl": full_url(context.key, "med", str(line)),
        "resource": resource,
        "request": {"method": "PUT", "url": f"MedicationRequest/{rid}"},
    }


def medication_request_entries(
    root: etree._Element, context: PrescriptionContext, warnings: list[str]
) -> list[dict]:
    """One PUT MedicationRequest per prescribed line, ids derived from the document and the line."""
    sections = table("medication_sections")["sections"]
    entries = []
    line = 0
    for section in root.iter(_SECTION):
        rules = next(
            (sections[t.get("root")] for t in every(section, "templateId") if t.get("root") in sections),
            None,
        )
        if rules is None:
            continue
        narrative = section_narrative(section)
        for administration in every(section, "entry/substanceAdministration"):
            line += 1
            if entry := _medication_request(administration, line, rules, narrative, context, warnings):
                entries.append(entry)
    return entries
