"""CDA R2 document -> FHIR R4 transaction Bundle (Patient, Encounter, Binary, DocumentReference,
MedicationRequest), ready for Repository.transaction."""

from dataclasses import dataclass, field

from cda.content import attachment, binary_entry, document_format, embedded_file
from cda.datatypes import V3, every, first, identifier, period, text, timestamp
from cda.document_reference import document_reference, master_identifier
from cda.encounter import encounter_entry
from cda.errors import CdaError
from cda.ids import document_key, full_url, resource_id
from cda.mappings import table
from cda.medications import PrescriptionContext, medication_request_entries, requester
from cda.patient import patient_resource
from cda.safe_xml import parse_xml

_CLINICAL_DOCUMENT = f"{{{V3}}}ClinicalDocument"


@dataclass
class CdaConversion:
    """A converted document: the transaction to run, what could not be mapped, and how to find
    the resulting DocumentReference (its masterIdentifier and its fullUrl inside `bundle`)."""

    bundle: dict
    warnings: list[str] = field(default_factory=list)
    master_identifier: dict = field(default_factory=dict)
    document_reference_fullurl: str = ""


def convert_cda(data: bytes) -> CdaConversion:
    """Convert one CDA document; raises CdaError when it cannot be stored at all."""
    root = parse_xml(data)
    if root.tag != _CLINICAL_DOCUMENT:
        raise CdaError("not-cda", f"root element is {root.tag}, not ClinicalDocument in {V3}")
    warnings: list[str] = []
    patient = patient_resource(first(root, "recordTarget"), warnings)
    master = master_identifier(root)
    key = document_key(master)
    first_identifier = patient["identifier"][0]
    patient_url = full_url("Patient", first_identifier["system"], first_identifier["value"])
    document_url = full_url(key, "DocumentReference")
    entries = [{
        "fullUrl": patient_url,
        "resource": patient,
        "request": {
            "method": "POST",
            "url": "Patient",
            "ifNoneExist": f"identifier={first_identifier['system']}|{first_identifier['value']}",
        },
    }]

    encounter = encounter_entry(
        root, full_url(key, "Encounter"), resource_id(key, "encounter"), patient_url, warnings
    )
    if encounter:
        entries.append(encounter)

    embedded = embedded_file(root, warnings)
    templates = [t.get("root") for t in every(root, "templateId") if t.get("root")]
    language_code = first(root, "languageCode")
    language = language_code.get("code") if language_code is not None else None
    title = text(first(root, "title"))
    effective = first(root, "effectiveTime")
    created = timestamp(effective.get("value"), warnings, "effectiveTime") if effective is not None else None
    fmt = document_format(templates, embedded, warnings)

    content_type = table("template_to_format")["content_type"]
    cda_id = resource_id(key)
    entries.append(binary_entry(full_url(key, "Binary"), cda_id, content_type, data))
    cda_content: dict = {"attachment": attachment(cda_id, content_type, data, language, title, created)}
    if fmt:
        cda_content["format"] = fmt
    content = [cda_content]
    if embedded is not None:
        file_id = resource_id(key, "file")
        entries.append(binary_entry(full_url(key, "Binary", "file"), file_id, embedded.media_type, embedded.data))
        # The format code describes the CDA wrapper; the bare file is described by its MIME type.
        content.append({
            "attachment": attachment(file_id, embedded.media_type, embedded.data, language, title, created)
        })

    encounter_url = encounter["fullUrl"] if encounter else None
    entries.append({
        "fullUrl": document_url,
        "resource": document_reference(root, master, patient_url, encounter_url, content, warnings),
        "request": {
            "method": "POST",
            "url": "DocumentReference",
            "ifNoneExist": f"identifier={master['system']}|{master['value']}",
        },
    })

    service_event = first(root, "documentationOf/serviceEvent")
    prescription = PrescriptionContext(
        key=key,
        patient_url=patient_url,
        document_url=document_url,
        encounter_url=encounter_url,
        authored_on=created,
        requester=requester(root),
        group_identifier=identifier(first(service_event, "id")),
        validity=period(first(service_event, "effectiveTime"), warnings, "serviceEvent"),
    )
    entries += medication_request_entries(root, prescription, warnings)
    return CdaConversion(
        bundle={"resourceType": "Bundle", "type": "transaction", "entry": entries},
        warnings=warnings,
        master_identifier=master,
        document_reference_fullurl=document_url,
    )
