"""componentOf/encompassingEncounter -> the Encounter of the stay the document belongs to."""

from lxml import etree

from cda.datatypes import coding, every, first, identifier, period

_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def _encounter_class(encounter: etree._Element, root: etree._Element) -> dict | None:
    # Encounter.class is mandatory; CI-SIS headers carry it on the encounter or, for stays
    # (LDL-SES), only as the serviceEvent code (IMP, AMB...) from the same ActCode system.
    for candidate in (first(encounter, "code"), first(root, "documentationOf/serviceEvent/code")):
        found = coding(candidate)
        if found and found["system"] == _ACT_CODE:
            return found
    return None


def encounter_entry(
    root: etree._Element, full_url: str, resource_id: str, patient_url: str, warnings: list[str]
) -> dict | None:
    """The Encounter entry: conditional create by its identifier when the sender gave one (so the
    documents of one stay share it), else PUT under an id derived from the document."""
    encounter = first(root, "componentOf/encompassingEncounter")
    if encounter is None:
        return None
    encounter_class = _encounter_class(encounter, root)
    if encounter_class is None:
        warnings.append("encompassingEncounter without an ActCode class: no Encounter created")
        return None
    identifiers = [i for i in map(identifier, every(encounter, "id")) if i]
    stay = period(first(encounter, "effectiveTime"), warnings, "encompassingEncounter")
    resource: dict = {"resourceType": "Encounter"}
    if identifiers:
        resource["identifier"] = identifiers
        key = identifiers[0]
        request = {
            "method": "POST",
            "url": "Encounter",
            "ifNoneExist": f"identifier={key['system']}|{key['value']}",
        }
    else:
        resource["id"] = resource_id
        request = {"method": "PUT", "url": f"Encounter/{resource_id}"}
    resource.update({
        "status": "finished" if stay and "end" in stay else "unknown",
        "class": encounter_class,
        "subject": {"reference": patient_url},
    })
    if stay:
        resource["period"] = stay
    return {"fullUrl": full_url, "resource": resource, "request": request}
