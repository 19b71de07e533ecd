"""ClinicalDocument header -> DocumentReference with the PDSm / CI-SIS document metadata."""

import orjson
from lxml import etree

from cda import correspondence
from cda.datatypes import codeable_concept, coding, every, first, identifier, period, text
from cda.document_id import master_identifier as document_identifier
from cda.errors import CdaError
from cda.mappings import table
from cda.participants import ContainedResources, assigned_entity, organization

# Where CI-SIS documents state the practice setting, most authoritative first.
_PRACTICE_SETTING_PATHS = (
    "documentationOf/serviceEvent/performer/assignedEntity/representedOrganization/standardIndustryClassCode",
    "legalAuthenticator/assignedEntity/representedOrganization/standardIndustryClassCode",
    "author/assignedAuthor/representedOrganization/standardIndustryClassCode",
)


PDSM_COMPREHENSIVE = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-comprehensive-document-reference"


def master_identifier(root: etree._Element) -> dict:
    """ClinicalDocument/id as masterIdentifier (the XDS uniqueId), the same on every channel."""
    document_id = first(root, "id")
    if document_id is None or document_id.get("nullFlavor") or not document_id.get("root"):
        raise CdaError("not-cda", "ClinicalDocument/id is missing: the document has no identity")
    return document_identifier(document_id.get("root"), document_id.get("extension"))


def _category(type_concept: dict | None, warnings: list[str]) -> list[dict] | None:
    """The class of the document type after ASS_X04."""
    codings = (type_concept or {}).get("coding", [])
    found = correspondence.document_class(codings)
    if found is None:
        used = correspondence.type_to_class()
        shown = ", ".join(f"{c.get('code')} ({c.get('system')})" for c in codings) or "(none)"
        warnings.append(f"document type {shown} is not in {used.name} version {used.version}: no class (category)")
        return None
    return [{"coding": [found]}]


def _security_label(root: etree._Element, warnings: list[str]) -> list[dict] | None:
    code = first(root, "confidentialityCode")
    if code is None or not code.get("code"):
        return None
    labels = table("confidentiality")
    display = labels["codes"].get(code.get("code"))
    if display is None:
        warnings.append(f"unknown confidentialityCode {code.get('code')!r}, passed through")
        passthrough = coding(code)
        return [{"coding": [passthrough]}] if passthrough else None
    return [{"coding": [{"system": labels["system"], "code": code.get("code"), "display": display}]}]


def _relates_to(root: etree._Element, warnings: list[str]) -> list[dict] | None:
    codes = table("related_document")
    result = []
    for related in every(root, "relatedDocument"):
        code = codes.get(related.get("typeCode", ""))
        target = identifier(first(related, "parentDocument/id"))
        if code is None or target is None:
            warnings.append(
                f"relatedDocument typeCode={related.get('typeCode')!r} without usable parent id ignored"
            )
            continue
        result.append({"code": code, "target": {"identifier": target}})
    return result or None


def _context(
    root: etree._Element, encounter_url: str | None, source_patient: str, warnings: list[str]
) -> dict:
    context: dict = {}
    if encounter_url:
        context["encounter"] = [{"reference": encounter_url}]
    service_events = every(root, "documentationOf/serviceEvent")
    events = [c for c in (codeable_concept(first(e, "code")) for e in service_events) if c]
    if events:
        context["event"] = events
    encounter = first(root, "componentOf/encompassingEncounter")
    for source in (*service_events, encounter):
        if found := period(first(source, "effectiveTime"), warnings, "context.period"):
            context["period"] = found
            break
    else:
        warnings.append("no serviceEvent or encompassingEncounter time: no context.period")
    if facility := codeable_concept(first(encounter, "location/healthCareFacility/code")):
        context["facilityType"] = facility
    else:
        warnings.append("no healthCareFacility code: no context.facilityType")
    for steps in _PRACTICE_SETTING_PATHS:
        if setting := codeable_concept(first(root, steps)):
            context["practiceSetting"] = setting
            break
    else:
        warnings.append("no practice setting (standardIndustryClassCode) in the header: no context.practiceSetting")
    # The identity as the source stated it (XDS sourcePatientInfo), kept apart from the shared Patient.
    context["sourcePatientInfo"] = {"reference": source_patient}
    return context


def document_reference(
    root: etree._Element,
    master: dict,
    created: str | None,
    patient: dict,
    patient_url: str,
    encounter_url: str | None,
    content: dict,
    warnings: list[str],
) -> dict:
    contained = ContainedResources()
    # A copy: the contained Patient must not share objects with the Patient entry of the bundle.
    source_patient = contained.add("patient", None, orjson.loads(orjson.dumps(patient)))
    authors = [
        reference
        for author in every(root, "author")
        if (reference := assigned_entity(first(author, "assignedAuthor"), contained))
    ]
    authenticator = assigned_entity(first(root, "legalAuthenticator/assignedEntity"), contained)
    custodian = organization(
        first(root, "custodian/assignedCustodian/representedCustodianOrganization"), contained
    )
    type_concept = codeable_concept(first(root, "code"))
    resource: dict = {"resourceType": "DocumentReference", "meta": {"profile": [PDSM_COMPREHENSIVE]}}
    if contained.resources:
        resource["contained"] = contained.resources
    resource.update(masterIdentifier=master, status="current")
    if type_concept:
        resource["type"] = type_concept
    if category := _category(type_concept, warnings):
        resource["category"] = category
    resource["subject"] = {"reference": patient_url}
    # date is an instant: a creation time known only to the day cannot fill it.
    if created and "T" in created:
        resource["date"] = created
    elif created:
        warnings.append("effectiveTime is not precise to the second: DocumentReference.date left empty")
    if authors:
        resource["author"] = [{"reference": reference} for reference in authors]
    if authenticator:
        resource["authenticator"] = {"reference": authenticator}
    if custodian:
        resource["custodian"] = {"reference": custodian}
    if relates_to := _relates_to(root, warnings):
        resource["relatesTo"] = relates_to
    if title := text(first(root, "title")):
        resource["description"] = title
    if labels := _security_label(root, warnings):
        resource["securityLabel"] = labels
    resource["content"] = [content]
    resource["context"] = _context(root, encounter_url, source_patient, warnings)
    return resource
