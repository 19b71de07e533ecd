"""CDA R2 document -> FHIR R4 transaction Bundle (Patient, Encounter, Binary, DocumentReference,
MedicationRequest), ready for Repository.transaction."""

from dataclasses import dataclass, field

from cda.content import stored_content
from cda.datatypes import V3, first, identifier, period, timestamp
from cda.document_reference import document_reference, master_identifier
from cda.encounter import encounter_entry
from cda.errors import CdaError
from cda.ids import document_key, full_url, resource_id
from cda.medications import PrescriptionContext, medication_request_entries, requester
from cda.patient import patient_entry
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
    # The bytes of the bundle's Binaries by fullUrl (their `data` is their base64).
    contents: dict[str, bytes] = field(default_factory=dict)


def convert_cda(data: bytes) -> CdaConversion:
    """Convert one CDA document; raises CdaError when it cannot be stored at all."""
    root = parse_xml(data)
    if root.tag != _CLINICAL_DOCUMENT:
        raise CdaError("not-cda", f"root element is {root.tag}, not ClinicalDocument in {V3}")
    warnings: list[str] = []
    patient = patient_entry(first(root, "recordTarget"), warnings)
    master = master_identifier(root)
    key = document_key(master)
    effective = first(root, "effectiveTime")
    created = timestamp(effective.get("value"), warnings, "effectiveTime") if effective is not None else None

    encounter = encounter_entry(
        root, full_url(key, "Encounter"), resource_id(key, "encounter"), patient["fullUrl"], warnings
    )
    encounter_url = encounter["fullUrl"] if encounter else None
    binaries, content, contents = stored_content(root, data, key, created, warnings)
    document_url = full_url(key, "DocumentReference")
    document = {
        "fullUrl": document_url,
        "resource": document_reference(
            root, master, created, patient["resource"], patient["fullUrl"], encounter_url, content,
            warnings,
        ),
        "request": {
            "method": "POST",
            "url": "DocumentReference",
            "ifNoneExist": f"identifier={master['system']}|{master['value']}",
        },
    }
    service_event = first(root, "documentationOf/serviceEvent")
    prescription = PrescriptionContext(
        key=key,
        patient_url=patient["fullUrl"],
        document_url=document_url,
        encounter_url=encounter_url,
        authored_on=created,
        requester=requester(root),
        group_identifier=identifier(first(service_event, "id")),
        validity=period(first(service_event, "effectiveTime"), warnings, "serviceEvent"),
    )
    medications = medication_request_entries(root, prescription, warnings)
    entries = [patient, *([encounter] if encounter else []), *binaries, document, *medications]
    return CdaConversion(
        bundle={"resourceType": "Bundle", "type": "transaction", "entry": entries},
        warnings=warnings,
        master_identifier=master,
        document_reference_fullurl=document_url,
        contents=contents,
    )
