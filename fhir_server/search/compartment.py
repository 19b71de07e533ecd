"""The Patient compartment (R4 compartmentdefinition-patient): whose record a resource belongs to,
and the compartment searches `GET /fhir/Patient/{id}/{type}` and `GET /fhir/Patient/{id}/*`.

A resource is in patient P's compartment when one of its type's compartment parameters references
P (a Patient is in its own). It belongs to the record of the patient named by the first of those
parameters, in the definition's order, that names one (project decision, issue 12): an
Observation's `subject` before its `performer`, an AllergyIntolerance's `patient` before its
`recorder`.
"""

from __future__ import annotations

from typing import Any

from fhir_server.definitions.compartment import COMPARTMENT, patient_compartment_params
from fhir_server.search.fields import ix_field
from fhir_server.search.filters.reference import reference_keys
from fhir_server.search.normalize.reference import RELATIVE_REFERENCE
from fhir_server.search.parameters import SearchParameterRegistry


def patient_id(reference: Any) -> str | None:
    """The id of the Patient of this server a reference names (`Patient/1`, `Patient/1/_history/2`);
    None for anything else: another type, a contained or logical reference, or an absolute URL,
    which names a patient of another server (`http://hl7.org/fhir/Patient/proband`)."""
    if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
        return None
    match = RELATIVE_REFERENCE.fullmatch(reference["reference"])
    return match.group(2) if match and match.group(1) == COMPARTMENT else None


class PatientCompartment:
    def __init__(self, registry: SearchParameterRegistry) -> None:
        self.registry = registry

    @staticmethod
    def types() -> list[str]:
        """The types that can be in a patient's compartment."""
        return sorted(patient_compartment_params())

    @staticmethod
    def params(resource_type: str) -> tuple[str, ...]:
        return patient_compartment_params().get(resource_type, ())

    def patients(self, resource: dict[str, Any]) -> list[str]:
        """Ids of every patient whose compartment holds the resource, in the order of its parameters."""
        rtype = resource.get("resourceType")
        found: list[str] = []
        if rtype == COMPARTMENT and isinstance(resource.get("id"), str):
            found.append(resource["id"])
        for code in self.params(str(rtype)):
            param = self.registry.get(str(rtype), code)
            if param is None:
                continue
            for _, value in param.evaluate(resource):
                patient = patient_id(value)
                if patient is not None and patient not in found:
                    found.append(patient)
        return found

    def record_patient(self, resource: dict[str, Any]) -> str | None:
        """The patient whose record the resource belongs to: a Patient itself, else the patient named
        by the first compartment parameter of its type that names one; None outside any record."""
        patients = self.patients(resource)
        return patients[0] if patients else None

    def in_patient_compartment(self, resource: dict[str, Any], patient_id: str) -> bool:
        return patient_id in self.patients(resource)

    def conditions(self, resource_type: str, patient_id: str, base_url: str) -> list[dict[str, Any]]:
        """Store conditions (ORed) selecting the resources of a type in the patient's compartment;
        none when the type cannot be in a patient compartment."""
        # The same keys `subject=Patient/{id}` matches: one equality per parameter.
        keys = reference_keys(f"{COMPARTMENT}/{patient_id}", [COMPARTMENT], None, base_url)
        out: list[dict[str, Any]] = [{"_id": patient_id}] if resource_type == COMPARTMENT else []
        for code in self.params(resource_type):
            out += [{ix_field(code): key} for key in keys]
        return out
