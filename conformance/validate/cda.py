"""A CDA R2 document as `POST /ingest/cda` takes it: read safely as a CI-SIS ClinicalDocument and
converted with the intake's own converter, then the DocumentReference it would become held to
PDSm comprehensive, as the intake holds it before storing."""

from __future__ import annotations

from conformance.model import Requirement, Result, Verdict
from conformance.validate import findings
from cda.convert import convert_cda
from cda.errors import CdaError
from fhir_server import facilities
from fhir_server.errors import Issue
from fhir_server.ingest import pdsm

TAGS = ("validate", "CDA")
DOCUMENT = Requirement(
    "HL7-CDA-R2 / ANS-CI-SIS", "ClinicalDocument header (CI-SIS, Volet Structuration minimale)",
    "[paraphrase] A CI-SIS document is a well-formed CDA R2 ClinicalDocument (urn:hl7-org:v3) whose header "
    "identifies the document (id), its patient (recordTarget/patientRole/id: the INS, else a local identifier), "
    "its type (code), author and custodian.")
PDSM = Requirement(
    "ANS-PDSm", "PDSm comprehensive DocumentReference",
    "[paraphrase] A document shared in the national record is described by a DocumentReference conforming to "
    "PDSm comprehensive: identifiers, type and class, format, confidentiality, author, custodian, facility type "
    "and practice setting.")
# Why a missing element the facility supplies is a warning here and not a failure.
FROM_FACILITY = ("the receiving server fills it from its configuration of the document's sending facility "
                 "(fhir-server facilities add), when it has one")


def validate(name: str, data: bytes) -> list[Result]:
    try:
        conversion = convert_cda(data)
    except CdaError as error:
        return [Result("VALIDATE-CDA-document", f"{name}: a CI-SIS CDA R2 document", TAGS, DOCUMENT, Verdict.FAILED,
                       f"{error.code}: {error.message}")]
    remarks = [Issue("warning", "informational", f"CDA: {w}") for w in conversion.warnings]
    read = findings.result("VALIDATE-CDA-document", f"{name}: a CI-SIS CDA R2 document", TAGS, DOCUMENT, remarks,
                           "a CDA R2 ClinicalDocument the intake reads: document id, patient, type")
    document = next(e["resource"] for e in conversion.bundle["entry"]
                    if e["fullUrl"] == conversion.document_reference_fullurl)
    return [read, pdsm_result(name, "VALIDATE-CDA-pdsm", TAGS, pdsm.problems(document), conversion.warnings)]


def pdsm_result(name: str, id_: str, tags: tuple[str, ...], problems: list[pdsm.Problem], remarks: list[str]) -> Result:
    """The intake's PDSm check of the DocumentReference it would store; what a configured sending
    facility would supply is a warning."""
    issues = [Issue("warning" if p.element in facilities.SUPPLIED else "error", p.code,
                    p.explained(remarks) + (f"; {FROM_FACILITY}" if p.element in facilities.SUPPLIED else ""),
                    [p.element]) for p in problems]
    return findings.result(id_, f"{name}: the DocumentReference it becomes is PDSm comprehensive", tags, PDSM,
                           issues, "the DocumentReference the intake makes of it conforms to PDSm comprehensive")
