"""FHIR R4 RESTful interactions (http.html): capabilities, create, read, vread, update, delete,
history, conditional create/update, version-aware updates, formats. Requirement words are quoted
from the FHIR R4 specification, http.html (section anchors as in the specification)."""

from __future__ import annotations

import base64
import json
from typing import Any

from conformance.registry import case
from conformance.session import Failed, Session, body_json, expect

R4 = "FHIR-R4"


def patient(s: Session, family: str = "Conformance", **more: Any) -> dict[str, Any]:
    """A Patient of the run: test-only identifier, no national identifier."""
    return {"resourceType": "Patient", "identifier": [{"system": s.system, "value": s.unique("patient")}],
            "name": [{"family": family, "given": ["Test"]}], "gender": "unknown", **more}


def created_patient(s: Session, **more: Any) -> dict[str, Any]:
    s.require_interaction("Patient", "create")
    return s.create(patient(s, **more))


def version_of(etag: str | None) -> str | None:
    """The versionId an ETag carries (W/"3" → 3)."""
    if not etag:
        return None
    return etag.removeprefix("W/").strip('"')


@case("FHIR-capabilities-01", "The server returns its CapabilityStatement", ["FHIR", "capabilities"], R4,
      "http.html#capabilities",
      "Applications SHALL return a Capability Statement that specifies which resource types and interactions are "
      "supported for the GET command.")
def capabilities(s: Session) -> None:
    response = s.get("metadata")
    expect(response, {200}, "GET [base]/metadata")
    body = body_json(response)
    if body.get("resourceType") != "CapabilityStatement":
        raise Failed(f"GET [base]/metadata answered a {body.get('resourceType')!r}, not a CapabilityStatement")
    if not str(body.get("fhirVersion", "")).startswith("4.0"):
        raise Failed(f"fhirVersion is {body.get('fhirVersion')!r}, not FHIR R4 (4.0.x)")
    if not s.rest().get("resource"):
        raise Failed("the CapabilityStatement declares no rest.resource in server mode")


@case("FHIR-create-01", "Create answers 201 with a Location naming the id and version", ["FHIR", "create"], R4,
      "http.html#create",
      "The server returns a 201 Created HTTP status code, and SHALL also return a Location header which contains "
      "the new Logical Id and Version Id of the created resource version")
def create_location(s: Session) -> None:
    s.require_interaction("Patient", "create")
    response = s.request("POST", "Patient", resource={**patient(s), "meta": s.tag()})
    expect(response, {201}, "POST [base]/Patient")
    location = response.headers.get("location", "")
    if "/Patient/" not in location:
        raise Failed(f"the Location header is {location!r}: it does not name the new Patient")
    resource_id = location.split("/Patient/")[1].split("/")[0]
    s.remember("Patient", resource_id)
    if "/_history/" not in location:
        raise Failed(f"the Location header {location!r} does not carry the version id (/_history/[vid])")


@case("FHIR-create-02", "Create ignores a client-supplied id and fills id, versionId, lastUpdated",
      ["FHIR", "create"], R4, "http.html#create",
      "If an id is provided, the server SHALL ignore it. [...] The server SHALL populate the id, meta.versionId and "
      "meta.lastUpdated with the new correct values.")
def create_ignores_id(s: Session) -> None:
    s.require_interaction("Patient", "create")
    proposed = s.fresh_id()
    created = s.create({**patient(s), "id": proposed})
    if created["id"] == proposed:
        raise Failed(f"the server kept the id the client sent ({proposed}) on a create")
    meta = created.get("meta", {})
    if not meta.get("versionId") or not meta.get("lastUpdated"):
        raise Failed(f"the created resource lacks meta.versionId or meta.lastUpdated (meta: {meta})")


@case("FHIR-read-01", "Read returns the resource with the asked id", ["FHIR", "read"], R4, "http.html#read",
      "The returned resource SHALL have an id element with a value that is the [id].")
def read(s: Session) -> None:
    s.require_interaction("Patient", "read")
    created = created_patient(s)
    response = s.get(f"Patient/{created['id']}")
    expect(response, {200}, "GET [base]/Patient/[id]")
    if body_json(response).get("id") != created["id"]:
        raise Failed(f"read Patient/{created['id']} returned id {body_json(response).get('id')!r}")


@case("FHIR-read-02", "Read of an unknown id answers 404", ["FHIR", "read", "errors"], R4, "http.html#read",
      "Unknown resources and deleted resources are treated differently on a read: A GET for a deleted resource "
      "returns a 410 status code, whereas a GET for an unknown resource returns 404.")
def read_unknown(s: Session) -> None:
    s.require_interaction("Patient", "read")
    response = s.get(f"Patient/{s.fresh_id()}")
    expect(response, {404}, "GET of a Patient id nobody created")


@case("FHIR-vread-01", "Vread returns the asked version", ["FHIR", "vread"], R4, "http.html#vread",
      "The returned resource SHALL have an id element with a value that is the [id], and a meta.versionId element "
      "with a value of [vid].")
def vread(s: Session) -> None:
    s.require_interaction("Patient", "vread")
    created = created_patient(s)
    version = created["meta"]["versionId"]
    response = s.get(f"Patient/{created['id']}/_history/{version}")
    expect(response, {200}, "GET [base]/Patient/[id]/_history/[vid]")
    body = body_json(response)
    if body.get("id") != created["id"] or body.get("meta", {}).get("versionId") != version:
        raise Failed(f"vread answered id {body.get('id')!r} version {body.get('meta', {}).get('versionId')!r}, "
                     f"expected {created['id']} version {version}")


@case("FHIR-update-01", "Update answers 200 with an ETag carrying the new versionId", ["FHIR", "update"], R4,
      "http.html#update",
      "If the interaction is successful, the server SHALL return either a 200 OK HTTP status code if the resource "
      "was updated, or a 201 Created status code if the resource was created, with a Last-Modified header, and an "
      "ETag header which contains the new versionId of the resource.")
def update(s: Session) -> None:
    s.require_interaction("Patient", "update")
    created = created_patient(s)
    changed = {**created, "gender": "other"}
    response = s.request("PUT", f"Patient/{created['id']}", resource=changed, headers={"Prefer": "return=representation"})
    expect(response, {200}, "PUT [base]/Patient/[id] of an existing Patient")
    etag = response.headers.get("etag")
    if not etag:
        raise Failed("the update answer has no ETag header")
    if not response.headers.get("last-modified"):
        raise Failed("the update answer has no Last-Modified header")
    current = body_json(s.get(f"Patient/{created['id']}"))
    if current.get("gender") != "other":
        raise Failed("a read after the update does not show the updated content")
    if version_of(etag) != current.get("meta", {}).get("versionId"):
        raise Failed(f"the ETag {etag} does not carry the versionId read afterwards "
                     f"({current.get('meta', {}).get('versionId')})")


@case("FHIR-update-02", "Update whose body id differs from the URL answers 400", ["FHIR", "update", "errors"], R4,
      "http.html#update",
      "If no id element is provided, or the value is wrong, the server SHALL respond with a HTTP 400 error code, "
      "and SHOULD provide an operation outcome identifying the issue.")
def update_wrong_id(s: Session) -> None:
    s.require_interaction("Patient", "update")
    created = created_patient(s)
    response = s.request("PUT", f"Patient/{created['id']}", resource={**created, "id": s.fresh_id()})
    expect(response, {400}, "PUT [base]/Patient/[id] with another id in the body")
    missing = {k: v for k, v in created.items() if k != "id"}
    response = s.request("PUT", f"Patient/{created['id']}", resource=missing)
    expect(response, {400}, "PUT [base]/Patient/[id] with no id in the body")


@case("FHIR-update-03", "An update with unchanged content is accepted (new version or not)", ["FHIR", "update"], R4,
      "http.html#update",
      "A server SHOULD accept the resource as submitted when it accepts the update, and return the same content "
      "when it is subsequently read. [Whether an identical update makes a new version is not specified: both pass.]")
def update_identical(s: Session) -> None:
    s.require_interaction("Patient", "update")
    created = created_patient(s)
    response = s.request("PUT", f"Patient/{created['id']}", resource=created)
    expect(response, {200}, "PUT [base]/Patient/[id] with the content just read")
    again = body_json(s.get(f"Patient/{created['id']}"))
    if again.get("name") != created.get("name") or again.get("identifier") != created.get("identifier"):
        raise Failed("the resource read after an identical update differs from what was sent")


@case("FHIR-update-04", "Update to a new client-chosen id creates the resource (when updateCreate is declared)",
      ["FHIR", "update", "optional"], R4, "http.html#upsert",
      "Servers can choose whether or not to support client defined ids, and indicate such to the clients using "
      "CapabilityStatement.rest.resource.updateCreate.")
def update_create(s: Session) -> None:
    s.require_interaction("Patient", "update")
    s.require_flag("Patient", "updateCreate")
    new_id = s.fresh_id()
    response = s.request("PUT", f"Patient/{new_id}", resource={**patient(s), "id": new_id, "meta": s.tag()})
    if response.status_code in (200, 201):
        s.remember("Patient", new_id)
    expect(response, {201}, "PUT [base]/Patient/[new id] with updateCreate declared")


@case("FHIR-etag-01", "Version-aware update: a stale If-Match is refused with 409 or 412",
      ["FHIR", "update", "versioning"], R4, "http.html#concurrency",
      "If the version id given in the If-Match header does not match, the server returns a 412 Pre-condition "
      "Failed status code instead of updating the resource. [R4 also names 409 Conflict for version conflicts: "
      "both pass.]")
def stale_if_match(s: Session) -> None:
    s.require_interaction("Patient", "update")
    s.require_flag("Patient", "versioning", ("versioned", "versioned-update"))
    created = created_patient(s)
    first = created["meta"]["versionId"]
    expect(s.request("PUT", f"Patient/{created['id']}", resource={**created, "gender": "male"}), {200},
           "a first update")
    response = s.request("PUT", f"Patient/{created['id']}", resource={**created, "gender": "female"},
                         headers={"If-Match": f'W/"{first}"'})
    expect(response, {409, 412}, "PUT with If-Match naming a version that is no longer current")
    if body_json(s.get(f"Patient/{created['id']}")).get("gender") != "male":
        raise Failed("the refused update changed the resource anyway")


@case("FHIR-etag-02", "Version-aware update: the current version in If-Match is accepted",
      ["FHIR", "update", "versioning"], R4, "http.html#concurrency",
      "If the client wishes to request a version aware update, it submits the request with an If-Match header that "
      "quotes the ETag from the server")
def current_if_match(s: Session) -> None:
    s.require_interaction("Patient", "update")
    s.require_flag("Patient", "versioning", ("versioned", "versioned-update"))
    created = created_patient(s)
    read = s.get(f"Patient/{created['id']}")
    etag = read.headers.get("etag") or f'W/"{created["meta"]["versionId"]}"'
    response = s.request("PUT", f"Patient/{created['id']}", resource={**created, "gender": "male"},
                         headers={"If-Match": etag})
    expect(response, {200}, f"PUT with If-Match: {etag} (the current version)")


@case("FHIR-delete-01", "Delete, then a read answers 410 (or 404) and search no longer finds it",
      ["FHIR", "delete"], R4, "http.html#delete",
      "A delete interaction means that subsequent non-version specific reads of a resource return a 410 HTTP "
      "status code and that the resource is no longer found through search interactions. [Systems that do not "
      "track deleted records treat them as unknown: 404 passes too.]")
def delete(s: Session) -> None:
    s.require_interaction("Patient", "delete")
    created = created_patient(s)
    response = s.request("DELETE", f"Patient/{created['id']}")
    expect(response, {200, 202, 204}, "DELETE [base]/Patient/[id]")
    expect(s.get(f"Patient/{created['id']}"), {404, 410}, "GET of the deleted Patient")
    identifier = created["identifier"][0]
    found = s.get("Patient", params={"identifier": f"{identifier['system']}|{identifier['value']}"})
    expect(found, {200}, "search by the deleted Patient's identifier")
    if any(e.get("resource", {}).get("id") == created["id"] for e in body_json(found).get("entry", [])):
        raise Failed("a search still finds the deleted Patient")


@case("FHIR-history-01", "Instance history lists the versions, newest first", ["FHIR", "history"], R4,
      "http.html#history",
      "The return content is a Bundle with type set to history containing the specified version history, sorted "
      "with oldest versions last, and including deleted resources.")
def history(s: Session) -> None:
    s.require_interaction("Patient", "history-instance")
    created = created_patient(s)
    expect(s.request("PUT", f"Patient/{created['id']}", resource={**created, "gender": "male"}), {200},
           "an update that makes a second version")
    response = s.get(f"Patient/{created['id']}/_history")
    expect(response, {200}, "GET [base]/Patient/[id]/_history")
    bundle = body_json(response)
    if bundle.get("type") != "history":
        raise Failed(f"the history Bundle has type {bundle.get('type')!r}, not history")
    versions = [e.get("resource", {}).get("meta", {}).get("versionId") for e in bundle.get("entry", [])]
    if len(versions) < 2:
        raise Failed(f"the history lists {len(versions)} versions after a create and an update")
    genders = [e.get("resource", {}).get("gender") for e in bundle["entry"]]
    if genders[0] != "male":
        raise Failed("the first entry of the history is not the newest version (oldest versions must be last)")


@case("FHIR-conditional-create-01", "Conditional create with one match creates nothing and answers 200",
      ["FHIR", "create", "conditional", "optional"], R4, "http.html#ccreate",
      "One Match: The server ignore the post and returns 200 OK")
def conditional_create_match(s: Session) -> None:
    s.require_flag("Patient", "conditionalCreate")
    created = created_patient(s)
    identifier = created["identifier"][0]
    criteria = f"identifier={identifier['system']}|{identifier['value']}"
    response = s.request("POST", "Patient", resource={**patient(s), "identifier": [identifier], "meta": s.tag()},
                         headers={"If-None-Exist": criteria})
    if response.status_code == 201:
        s.remember("Patient", s.resource_of(response, "Patient")["id"])
    expect(response, {200}, f"POST with If-None-Exist: {criteria} matching one Patient")
    found = body_json(s.get("Patient", params={"identifier": f"{identifier['system']}|{identifier['value']}"}))
    if len(found.get("entry", [])) != 1:
        raise Failed(f"after the conditional create, {len(found.get('entry', []))} Patients carry the identifier")


@case("FHIR-conditional-create-02", "Conditional create with several matches is refused",
      ["FHIR", "create", "conditional", "optional"], R4, "http.html#ccreate",
      "Multiple matches: The server returns a 412 Precondition Failed error indicating the client's criteria were "
      "not selective enough [a server not supporting the variant answers 400 or 412: both pass]")
def conditional_create_many(s: Session) -> None:
    s.require_flag("Patient", "conditionalCreate")
    family = s.unique("family")
    s.create(patient(s, family=family))
    s.create(patient(s, family=family))
    response = s.request("POST", "Patient", resource={**patient(s, family=family), "meta": s.tag()},
                         headers={"If-None-Exist": f"family={family}"})
    if response.status_code in (200, 201):
        created = body_json(response)
        if created.get("id"):
            s.remember("Patient", created["id"])
    expect(response, {400, 412}, "POST with If-None-Exist matching two Patients")


@case("FHIR-conditional-update-01", "Conditional update: no match creates, one match updates that resource",
      ["FHIR", "update", "conditional", "optional"], R4, "http.html#cond-update",
      "No matches: The server performs a create interaction. One Match: The server performs the update against "
      "the matching resource")
def conditional_update(s: Session) -> None:
    s.require_flag("Patient", "conditionalUpdate")
    fresh = patient(s)
    identifier = fresh["identifier"][0]
    query = f"identifier={identifier['system']}|{identifier['value']}"
    first = s.request("PUT", f"Patient?{query}", resource={**fresh, "meta": s.tag()})
    if first.status_code in (200, 201):
        s.remember("Patient", s.resource_of(first, "Patient")["id"])
    expect(first, {201}, "conditional update matching nothing")
    created_id = s.resource_of(first, "Patient")["id"]
    second = s.request("PUT", f"Patient?{query}", resource={**fresh, "gender": "male", "meta": s.tag()})
    expect(second, {200}, "conditional update matching the Patient just created")
    if s.resource_of(second, "Patient")["id"] != created_id:
        raise Failed("the conditional update matching one Patient did not update that Patient")


@case("FHIR-conditional-update-02", "Conditional update with several matches is refused",
      ["FHIR", "update", "conditional", "optional"], R4, "http.html#cond-update",
      "Multiple matches: The server returns a 412 Precondition Failed error indicating the client's criteria were "
      "not selective enough [a server not supporting the variant answers 400: both pass]")
def conditional_update_many(s: Session) -> None:
    s.require_flag("Patient", "conditionalUpdate")
    family = s.unique("family")
    s.create(patient(s, family=family))
    s.create(patient(s, family=family))
    response = s.request("PUT", f"Patient?family={family}", resource={**patient(s, family=family), "meta": s.tag()})
    if response.status_code in (200, 201):
        s.remember("Patient", s.resource_of(response, "Patient")["id"])
    expect(response, {400, 412}, "conditional update matching two Patients")


@case("FHIR-format-01", "XML asked: served as XML, or refused with 406 when XML is not declared",
      ["FHIR", "formats"], R4, "http.html#mime-type",
      "Servers SHALL support server-driven content negotiation as described in section 12 of the HTTP "
      "specification. [A server declaring xml in CapabilityStatement.format serves it; one that does not may "
      "answer 406 or serve XML: both pass.]")
def xml_format(s: Session) -> None:
    declared = any("xml" in str(f) for f in s.capability.get("format", []))
    response = s.get("metadata", headers={"Accept": "application/fhir+xml"})
    served_xml = response.status_code == 200 and "xml" in response.headers.get("content-type", "")
    if served_xml:
        return
    if declared:
        raise Failed(f"the CapabilityStatement declares XML but Accept: application/fhir+xml answered "
                     f"{response.status_code} {response.headers.get('content-type', '')}")
    if response.status_code not in (406, 415):
        raise Failed(f"Accept: application/fhir+xml, XML not declared: expected XML or 406, got "
                     f"{response.status_code} {response.headers.get('content-type', '')}")


@case("FHIR-errors-01", "A create with an unparseable or invalid resource answers 400 or 422",
      ["FHIR", "create", "errors"], R4, "http.html#create",
      "When the resource syntax or data is incorrect or invalid, and cannot be used to create a new resource, the "
      "server returns a 400 Bad Request HTTP status code. When the server rejects the content of the resource "
      "because of business rules, the server returns a 422 Unprocessible Entity error HTTP status code.")
def create_invalid(s: Session) -> None:
    s.require_interaction("Patient", "create")
    response = s.request("POST", "Patient", content=b'{"resourceType": "Patient", "birthDate": ',
                         headers={"Content-Type": "application/fhir+json"})
    expect(response, {400, 422}, "POST of a truncated JSON body")
    wrong = {**patient(s), "birthDate": "not a date", "meta": s.tag()}
    response = s.request("POST", "Patient", resource=wrong)
    if response.status_code == 201:
        s.remember("Patient", s.resource_of(response, "Patient")["id"])
    expect(response, {400, 422}, "POST of a Patient whose birthDate is not a date")


@case("FHIR-errors-02", "A failed transaction answers a single OperationOutcome", ["FHIR", "transaction", "errors"],
      R4, "http.html#transaction-response",
      "For a failed transaction, the server returns a single OperationOutcome instead of a Bundle.")
def failed_transaction_outcome(s: Session) -> None:
    s.require_system_interaction("transaction")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:9b0a4f6e-0000-4000-8000-000000000001",
         "resource": {**patient(s), "meta": s.tag(), "birthDate": "not a date"},
         "request": {"method": "POST", "url": "Patient"}}]}
    response = s.request("POST", "", resource=bundle)
    if response.status_code == 200:
        for entry in body_json(response).get("entry", []):
            location = entry.get("response", {}).get("location", "")
            if location.startswith("Patient/"):
                s.remember("Patient", location.split("/")[1])
        raise Failed("a transaction holding an invalid Patient (birthDate 'not a date') was accepted")
    if body_json(response).get("resourceType") != "OperationOutcome":
        raise Failed(f"the failed transaction answered {response.status_code} without an OperationOutcome")


@case("FHIR-create-03", "Create ignores meta.versionId and meta.lastUpdated sent by the client", ["FHIR", "create"],
      R4, "http.html#create",
      "If the request body includes a meta, the server SHALL ignore the existing versionId and lastUpdated values.")
def create_ignores_meta(s: Session) -> None:
    s.require_interaction("Patient", "create")
    created = s.create({**patient(s), "meta": {"versionId": "fc-999", "lastUpdated": "2001-01-01T00:00:00Z"}})
    meta = created.get("meta", {})
    if meta.get("versionId") == "fc-999" or str(meta.get("lastUpdated", "")).startswith("2001-01-01"):
        raise Failed(f"the server kept the client's meta.versionId or meta.lastUpdated: {meta}")


@case("FHIR-history-02", "Instance history includes the deletion", ["FHIR", "history", "delete"], R4,
      "http.html#history",
      "The return content is a Bundle with type set to history containing the specified version history, sorted "
      "with oldest versions last, and including deleted resources.")
def history_after_delete(s: Session) -> None:
    s.require_interaction("Patient", "history-instance")
    s.require_interaction("Patient", "delete")
    created = created_patient(s)
    expect(s.request("DELETE", f"Patient/{created['id']}"), {200, 202, 204}, "DELETE [base]/Patient/[id]")
    response = s.get(f"Patient/{created['id']}/_history")
    expect(response, {200}, "GET [base]/Patient/[id]/_history of a deleted Patient")
    entries = body_json(response).get("entry", [])
    if len(entries) < 2:
        raise Failed(f"the history of a created then deleted Patient lists {len(entries)} entries, expected the "
                     "creation and the deletion")
    newest = entries[0]
    if newest.get("request", {}).get("method") != "DELETE" and "resource" in newest:
        raise Failed("the newest history entry is not the deletion (no request.method DELETE, and it holds a resource)")


@case("FHIR-vread-02", "Vread of a version that does not exist answers 404", ["FHIR", "vread", "errors"], R4,
      "http.html#vread",
      "[Unknown resources answer 404:] a GET for an unknown resource returns 404.")
def vread_unknown(s: Session) -> None:
    s.require_interaction("Patient", "vread")
    created = created_patient(s)
    response = s.get(f"Patient/{created['id']}/_history/fc-no-such-version")
    expect(response, {404}, "GET [base]/Patient/[id]/_history/[a version that never existed]")


@case("FHIR-create-04", "A Binary over 10 MB is stored whole or refused with a 4xx (only with --large)",
      ["FHIR", "create", "large"], R4, "http.html#create / http.html#return",
      "When the server rejects the content of the resource [...] the server SHOULD include a response body "
      "containing an OperationOutcome [...]. A server SHOULD accept the resource as submitted when it accepts the "
      "create, and return the same content when it is subsequently read.")
def create_large_binary(s: Session) -> None:
    s.require_interaction("Binary", "create")
    data = b"%PDF-1.4\n" + b"0" * (11 * 1024 * 1024) + b"\n%%EOF\n"
    binary = {"resourceType": "Binary", "contentType": "application/pdf", "meta": s.tag(),
              "data": base64.b64encode(data).decode()}
    response = s.request("POST", "Binary", content=json.dumps(binary).encode(),
                         headers={"Content-Type": "application/fhir+json"})
    if response.status_code == 201:
        created = s.resource_of(response, "Binary")
        s.remember("Binary", created["id"])
        read = s.get(f"Binary/{created['id']}", headers={"Accept": "application/fhir+json"})
        expect(read, {200}, "read of the large Binary")
        if base64.b64decode(body_json(read).get("data", "")) != data:
            raise Failed("the large Binary read back differs from what was sent")
        return
    if not 400 <= response.status_code < 500:
        raise Failed(f"an 11 MB Binary answered {response.status_code}: expected 201, or a 4xx such as 413")
