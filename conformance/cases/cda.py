"""CDA R2 intake. FHIR has no CapabilityStatement element that declares a non-FHIR intake endpoint,
so the tester declares it with --cda-url (the URL that takes a CDA document by POST); without it the
cases are "not declared"."""

from __future__ import annotations

from conformance.registry import case
from conformance.session import Failed, NotDeclared, Session, body_json


def _url(s: Session) -> str:
    if not s.options.cda_url:
        raise NotDeclared("no CDA intake declared (give --cda-url to test one)")
    return s.options.cda_url


@case("CDA-01", "A document that is not CDA R2 is refused with an OperationOutcome, nothing stored", ["CDA"],
      "HL7-CDA-R2", "ClinicalDocument (root) / FHIR-R4 http.html#return",
      "[CDA R2] Every CDA document has exactly one ClinicalDocument root element, in the urn:hl7-org:v3 namespace. "
      "[FHIR R4 http.html] In case of failure, servers SHOULD always return a body that contains an "
      "OperationOutcome resource.")
def not_cda(s: Session) -> None:
    url = _url(s)
    response = s.request("POST", url, content=b'<?xml version="1.0"?><Invoice xmlns="urn:example:not-cda"/>',
                         headers={"Content-Type": "application/hl7-cda+xml"})
    if response.status_code < 400 or response.status_code >= 500:
        raise Failed(f"a document whose root is not ClinicalDocument answered {response.status_code}, expected a 4xx")
    if body_json(response).get("resourceType") != "OperationOutcome":
        raise Failed("the refusal carries no OperationOutcome")


@case("CDA-02", "A malformed XML document is refused with a 4xx, never a 5xx", ["CDA"], "HL7-CDA-R2",
      "XML well-formedness / FHIR-R4 http.html#return",
      "[CDA R2 documents are XML documents: a receiver refuses one that is not well-formed.] In case of failure, "
      "servers SHOULD always return a body that contains an OperationOutcome resource.")
def malformed_xml(s: Session) -> None:
    url = _url(s)
    response = s.request("POST", url, content=b'<?xml version="1.0"?><ClinicalDocument xmlns="urn:hl7-org:v3"><title>',
                         headers={"Content-Type": "application/hl7-cda+xml"})
    if not 400 <= response.status_code < 500:
        raise Failed(f"a truncated XML document answered {response.status_code}, expected a 4xx")
