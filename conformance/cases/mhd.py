"""IHE MHD (ITI TF-2, MHD 4.2): Provide Document Bundle [ITI-65] at the Document Recipient, Find
Document References [ITI-67] and Retrieve Document [ITI-68] at the Document Responder, with the
ANS PDSm profiles. Run only when the CapabilityStatement instantiates the actor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conformance.cases.rest import patient
from conformance.documents import PDF, provide_bundle
from conformance.registry import case
from conformance.session import Failed, NotDeclared, Session, body_json, expect

RECIPIENT = "IHE.MHD.DocumentRecipient"
RESPONDER = "IHE.MHD.DocumentResponder"
PDSM_IG = "interop.esante.gouv.fr/ig/fhir/pdsm"


def require_actor(s: Session, actor: str) -> None:
    if not s.instantiates(actor):
        raise NotDeclared(f"the CapabilityStatement does not instantiate the MHD {actor} CapabilityStatement")


@dataclass
class Provided:
    document_id: str
    binary_id: str
    list_id: str
    master: str
    patient_id: str


def provide(s: Session, patient_id: str | None = None, role: str | None = None, **kwargs: Any) -> Provided:
    """ITI-65 of one document for `patient_id` (a new Patient of the run when None); Failed unless 200."""
    if patient_id is None:
        patient_id = s.create(patient(s))["id"]
    bundle, master = provide_bundle(s, patient_id, **kwargs)
    response = s.request("POST", "", resource=bundle, role=role)
    expect(response, {200}, "ITI-65 Provide Document Bundle")
    created = remember_created(s, body_json(response))
    if not {"DocumentReference", "Binary", "List"} <= created.keys():
        raise Failed(f"the ITI-65 response does not locate a created List, DocumentReference and Binary: {created}")
    return Provided(created["DocumentReference"], created["Binary"], created["List"], master, patient_id)


def remember_created(s: Session, answer: dict[str, Any]) -> dict[str, str]:
    created: dict[str, str] = {}
    for entry in answer.get("entry", []):
        location = entry.get("response", {}).get("location", "").split("/_history")[0]
        parts = location.rstrip("/").split("/")
        if len(parts) >= 2 and entry.get("response", {}).get("status", "").startswith("201"):
            created[parts[-2]] = parts[-1]
            s.remember(parts[-2], parts[-1])
    return created


def _type_of(location: str) -> str:
    """The resource type a Location names, relative (List/1) or absolute ([base]/List/1/_history/1)."""
    parts = location.split("/_history")[0].rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 else ""


def refused_and_nothing_stored(s: Session, response: Any, master: str, what: str) -> None:
    if response.status_code == 200:
        remember_created(s, body_json(response))
        raise Failed(f"the Document Recipient accepted a bundle with {what}")
    if not 400 <= response.status_code < 500:
        raise Failed(f"a bundle with {what} answered {response.status_code}, expected a 4xx error")
    if body_json(response).get("resourceType") != "OperationOutcome":
        raise Failed(f"the refusal ({response.status_code}) carries no OperationOutcome")
    found = body_json(s.get("DocumentReference", params={"identifier": f"urn:ietf:rfc:3986|{master}"}))
    if found.get("entry"):
        for entry in found["entry"]:
            s.remember("DocumentReference", entry["resource"]["id"])
        raise Failed(f"the bundle with {what} was refused but its DocumentReference was stored")


@case("MHD-ITI65-01", "Provide Document Bundle: accepted atomically, one response entry per request entry",
      ["MHD", "ITI-65", "PDSm"], "IHE-ITI-65", "2:3.65.4.1.3 Expected Actions",
      "The Document Recipient shall process the bundle atomically, analogous to both the Provide and Register "
      "Document Set-b [ITI-41] transaction and FHIR \u201ctransaction\u201d as specified in "
      "http://hl7.org/fhir/R4/http.html#transaction.")
def provide_document(s: Session) -> None:
    require_actor(s, RECIPIENT)
    provided = provide(s)
    document = body_json(s.get(f"DocumentReference/{provided.document_id}"))
    if document.get("subject", {}).get("reference") != f"Patient/{provided.patient_id}":
        raise Failed(f"the stored DocumentReference's subject is {document.get('subject')}")
    url = document.get("content", [{}])[0].get("attachment", {}).get("url", "")
    if not url.rstrip("/").endswith(f"Binary/{provided.binary_id}"):
        raise Failed(f"attachment.url is {url!r}: it was not replaced by the Binary created from the bundle")


@case("MHD-ITI65-02", "Provide Document Bundle: a wrong attachment hash is refused, nothing stored",
      ["MHD", "ITI-65", "PDSm"], "IHE-ITI-65", "2:3.65.4.1.2.1 / 2:3.65.4.1.3",
      "The Document Source shall populate accurate .hash and .size for the document content [...] If the Document "
      "Recipient encounters any errors or if any validation fails, the Document Recipient shall return an error")
def wrong_hash(s: Session) -> None:
    require_actor(s, RECIPIENT)
    patient_id = s.create(patient(s))["id"]
    bundle, master = provide_bundle(s, patient_id, hash_="AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    refused_and_nothing_stored(s, s.request("POST", "", resource=bundle), master, "a hash that is not the document's")


@case("MHD-ITI65-03", "Provide Document Bundle: a wrong attachment size is refused, nothing stored",
      ["MHD", "ITI-65", "PDSm"], "IHE-ITI-65", "2:3.65.4.1.2.1 / 2:3.65.4.1.3",
      "The Document Source shall populate accurate .hash and .size for the document content [...] If the Document "
      "Recipient encounters any errors or if any validation fails, the Document Recipient shall return an error")
def wrong_size(s: Session) -> None:
    require_actor(s, RECIPIENT)
    patient_id = s.create(patient(s))["id"]
    bundle, master = provide_bundle(s, patient_id, size=len(PDF) + 1000)
    refused_and_nothing_stored(s, s.request("POST", "", resource=bundle), master, "a size that is not the document's")


@case("MHD-ITI65-04", "Provide Document Bundle: an unknown subject Patient is refused, nothing stored",
      ["MHD", "ITI-65", "PDSm"], "IHE-ITI-65", "2:3.65.4.1.2.2 Patient Identity",
      "All DocumentReference.subject, and List.subject values shall be a Reference to a FHIR Patient Resource. "
      "[...] If the Document Recipient encounters any errors or if any validation fails, the Document Recipient "
      "shall return an error")
def unknown_patient(s: Session) -> None:
    require_actor(s, RECIPIENT)
    bundle, master = provide_bundle(s, s.fresh_id())
    refused_and_nothing_stored(s, s.request("POST", "", resource=bundle), master, "a subject Patient that does not exist")


@case("MHD-ITI67-01", "Find Document References by patient and status", ["MHD", "ITI-67", "PDSm"], "IHE-ITI-67",
      "2:3.67.4.1.2.1 Query Search Parameters",
      "The Document Consumer shall include search parameter patient or patient.identifier, and status. [...] The "
      "Document Responder shall process the query to discover the DocumentReference entries that match the search "
      "parameters given.")
def find_documents(s: Session) -> None:
    require_actor(s, RESPONDER)
    require_actor(s, RECIPIENT)
    provided = provide(s)
    response = s.get("DocumentReference", params={"patient": f"Patient/{provided.patient_id}", "status": "current"})
    expect(response, {200}, "GET [base]/DocumentReference?patient=...&status=current")
    found = [e["resource"]["id"] for e in body_json(response).get("entry", [])
             if e.get("resource", {}).get("resourceType") == "DocumentReference"]
    if found != [provided.document_id]:
        raise Failed(f"ITI-67 found {found}, expected the one document provided [{provided.document_id}]")
    response = s.get("DocumentReference", params={"patient": f"Patient/{provided.patient_id}",
                                                  "status": "superseded"})
    expect(response, {200}, "GET [base]/DocumentReference?patient=...&status=superseded")
    if body_json(response).get("entry"):
        raise Failed("a search for superseded documents found the current one")


@case("MHD-ITI67-02", "Find Document References answers POST searches too", ["MHD", "ITI-67", "PDSm"], "IHE-ITI-67",
      "2:3.67.4.1.2 Message Semantics",
      "The Document Consumer may use GET or POST based searches. The Document Responder shall support both GET and "
      "POST based searches")
def find_documents_post(s: Session) -> None:
    require_actor(s, RESPONDER)
    require_actor(s, RECIPIENT)
    provided = provide(s)
    response = s.request("POST", "DocumentReference/_search",
                         content=f"patient=Patient/{provided.patient_id}&status=current".encode(),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    expect(response, {200}, "POST [base]/DocumentReference/_search")
    found = [e["resource"]["id"] for e in body_json(response).get("entry", [])
             if e.get("resource", {}).get("resourceType") == "DocumentReference"]
    if found != [provided.document_id]:
        raise Failed(f"the POST search found {found}, expected [{provided.document_id}]")


@case("MHD-ITI68-01", "Retrieve Document returns the document's bytes with 200", ["MHD", "ITI-68", "PDSm"],
      "IHE-ITI-68", "2:3.68.4.2.2 Message Semantics",
      "When the requested document is returned, the Document Responder shall respond with HTTP Status Code 200. "
      "The HTTP message-body shall be the content of the requested document.")
def retrieve_document(s: Session) -> None:
    require_actor(s, RESPONDER)
    require_actor(s, RECIPIENT)
    provided = provide(s)
    document = body_json(s.get(f"DocumentReference/{provided.document_id}"))
    url = document["content"][0]["attachment"]["url"]
    response = s.get(url, headers={"Accept": "application/pdf"})
    expect(response, {200}, f"GET {url} (attachment.url) with Accept: application/pdf")
    if response.content != PDF:
        raise Failed(f"the retrieved body ({len(response.content)} bytes) is not the document provided "
                     f"({len(PDF)} bytes)")


@case("MHD-ITI68-02", "Retrieve Document of an unknown document answers 404", ["MHD", "ITI-68"], "IHE-ITI-68",
      "Table 3.68.4.2.2-1", "URI not known: 404 Document Not Found")
def retrieve_unknown(s: Session) -> None:
    require_actor(s, RESPONDER)
    response = s.get(f"Binary/{s.fresh_id()}", headers={"Accept": "application/pdf"})
    expect(response, {404}, "GET of a Binary nobody created")


@case("PDSm-ITI65-01", "PDSm: a second document with the same masterIdentifier is refused", ["PDSm", "ITI-65"],
      "ANS-PDSm", "st_ajout (ITI-65) / IHE ITI TF-3 4.2.4.1 DuplicateUniqueIdInRegistry",
      "[XDS metadata, which PDSm follows:] uniqueId: Globally unique identifier assigned to the document by its "
      "creator. [A Document Recipient refuses a second, different document with a uniqueId it already holds: "
      "DuplicateUniqueIdInRegistry.]")
def duplicate_master_identifier(s: Session) -> None:
    require_actor(s, RECIPIENT)
    if not any(PDSM_IG in str(ig) for ig in s.capability.get("implementationGuide", [])):
        raise NotDeclared("the CapabilityStatement does not name the ANS PDSm implementation guide")
    first = provide(s)
    bundle, _ = provide_bundle(s, first.patient_id, data=PDF + b"%another\n")
    bundle["entry"][1]["resource"]["masterIdentifier"]["value"] = first.master
    response = s.request("POST", "", resource=bundle)
    if response.status_code == 200:
        remember_created(s, body_json(response))
        raise Failed("a different document with an already stored masterIdentifier (uniqueId) was accepted")
    if not 400 <= response.status_code < 500:
        raise Failed(f"the duplicate answered {response.status_code}, expected a 4xx error")


@case("PDSm-ITI65-02", "PDSm: the ITI-65 answer is a transaction-response, one entry per entry, in order",
      ["PDSm", "ITI-65"], "ANS-PDSm", "st_ajout, Flux 02 : Résultat de l'ajout d'un lot de documents",
      "Le corps de la réponse doit être un Bundle de type transaction-response avec un élément entry pour chaque "
      "ressource reçue dans le Bundle de la requête, dans le même ordre, avec le résultat du traitement de "
      "l'élément.")
def pdsm_response(s: Session) -> None:
    require_actor(s, RECIPIENT)
    if not any(PDSM_IG in str(ig) for ig in s.capability.get("implementationGuide", [])):
        raise NotDeclared("the CapabilityStatement does not name the ANS PDSm implementation guide")
    patient_id = s.create(patient(s))["id"]
    bundle, _ = provide_bundle(s, patient_id)
    response = s.request("POST", "", resource=bundle)
    expect(response, {200}, "ITI-65 Provide Document Bundle")
    answer = body_json(response)
    remember_created(s, answer)
    entries = answer.get("entry", [])
    if answer.get("type") != "transaction-response" or len(entries) != len(bundle["entry"]):
        raise Failed(f"the answer is a {answer.get('type')!r} of {len(entries)} entries, expected a "
                     f"transaction-response of {len(bundle['entry'])}")
    sent = [e["request"]["url"] for e in bundle["entry"]]
    answered = [_type_of(e.get("response", {}).get("location", "")) for e in entries]
    if answered != sent:
        raise Failed(f"the response entries locate {answered}, expected {sent} in the request's order")
    statuses = [e.get("response", {}).get("status", "") for e in entries]
    if not all(status.startswith("201") for status in statuses):
        raise Failed(f"entry statuses are {statuses}, expected 201 for each created resource")
