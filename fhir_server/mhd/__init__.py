"""IHE MHD with the French PDSm profile: the Document Recipient and Document Responder rules."""

from cda.document_reference import PDSM_COMPREHENSIVE

SUBMISSION_SET = ("https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes", "submissionset")
PDSM_PROFILES = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/"
SIMPLIFIED_PUBLISH = PDSM_PROFILES + "PDSm-SimplifiedPublish"
COMPREHENSIVE_DOCUMENT_REFERENCE = PDSM_COMPREHENSIVE
