"""ITI-65 refusals, each read the way a sending system reads them: the status, and for every
issue its severity, code, a message and the exact element it names. A refused bundle leaves
nothing in the record."""

from __future__ import annotations

import base64
import copy
import uuid

import httpx
import pytest

from tests.mhd.documents import INS_TEST, PDF, patient, provide_bundle, sha1

DOCUMENT = "Bundle.entry[1].resource"
ATTACHMENT = f"{DOCUMENT}.content[0].attachment"


def refused(response: httpx.Response, status: int, *expected: tuple[str, str, str]) -> None:
    """`expected`: (issue code, expression, a word of the message) for each issue, in order."""
    assert response.status_code == status, response.text
    issues = response.json()["issue"]
    assert len(issues) == len(expected), issues
    for issue, (code, expression, word) in zip(issues, expected):
        assert (issue["severity"], issue["code"], issue["expression"]) == ("error", code, [expression]), issue
        assert isinstance(issue["diagnostics"], str) and word in issue["diagnostics"], issue


def nothing_stored(fhir: httpx.Client, master_id: str) -> None:
    found = fhir.get("/DocumentReference", params={"identifier": f"urn:ietf:rfc:3986|urn:oid:{master_id}"}).json()
    assert found["total"] == 0
    lists = fhir.get("/List", params={"identifier": f"urn:ietf:rfc:3986|urn:oid:{master_id}.99"}).json()
    assert lists["total"] == 0


def subject_of(known_patient: dict) -> dict:
    return {"reference": f"Patient/{known_patient['id']}"}


def test_size_hash_and_type_mismatches_are_all_reported(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    bundle = provide_bundle(subject_of(known_patient), master_id, size=len(PDF) + 1, hash_=sha1(b"other"))
    bundle["entry"][2]["resource"]["contentType"] = "text/plain"
    refused(fhir.post("", json=bundle), 422,
            ("value", f"{ATTACHMENT}.size", f"{len(PDF) + 1}"),
            ("value", f"{ATTACHMENT}.hash", sha1(PDF)),
            ("value", f"{ATTACHMENT}.contentType", "contentType"))
    nothing_stored(fhir, master_id)


@pytest.mark.parametrize("url", [f"urn:uuid:{uuid.uuid4()}", "binary/lower-case"])
def test_attachment_naming_no_binary_of_the_bundle_is_refused(fhir: httpx.Client, known_patient: dict, master_id: str, url: str) -> None:
    bundle = provide_bundle(subject_of(known_patient), master_id)
    bundle["entry"][1]["resource"]["content"][0]["attachment"]["url"] = url
    refused(fhir.post("", json=bundle), 422, ("required", f"{ATTACHMENT}.url", "names no Binary"))
    nothing_stored(fhir, master_id)


def test_attachment_naming_a_binary_already_in_the_record_is_accepted(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    stored = fhir.post("/Binary", content=PDF, headers={"Content-Type": "application/pdf"})
    assert stored.status_code == 201, stored.text
    bundle = provide_bundle(subject_of(known_patient), master_id)
    del bundle["entry"][2]
    bundle["entry"][1]["resource"]["content"][0]["attachment"]["url"] = f"Binary/{stored.json()['id']}"
    response = fhir.post("", json=bundle)
    assert response.status_code == 200, response.text


def test_binary_put_with_its_own_id_is_checked_too(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    """The attachment may name the Binary by the id the bundle gives it, not only by fullUrl."""
    bundle = provide_bundle(subject_of(known_patient), master_id, hash_=sha1(b"other"))
    binary_id = f"pdf-{uuid.uuid4().hex[:12]}"
    bundle["entry"][2]["request"] = {"method": "PUT", "url": f"Binary/{binary_id}"}
    bundle["entry"][2]["fullUrl"] = f"urn:uuid:{uuid.uuid4()}"
    bundle["entry"][1]["resource"]["content"][0]["attachment"]["url"] = f"Binary/{binary_id}"
    refused(fhir.post("", json=bundle), 422, ("value", f"{ATTACHMENT}.hash", sha1(PDF)))
    assert fhir.get(f"/Binary/{binary_id}").status_code == 404
    nothing_stored(fhir, master_id)


def test_put_document_reference_is_checked_like_a_post(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    bundle = provide_bundle(subject_of(known_patient), master_id, size=3)
    bundle["entry"][1]["request"] = {"method": "PUT", "url": f"DocumentReference/doc-{uuid.uuid4().hex[:12]}"}
    refused(fhir.post("", json=bundle), 422, ("value", f"{ATTACHMENT}.size", "3"))


def test_master_identifier_twice_in_one_bundle_is_a_conflict(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    bundle = provide_bundle(subject_of(known_patient), master_id)
    twin = copy.deepcopy(bundle["entry"][1])
    twin["fullUrl"] = f"urn:uuid:{uuid.uuid4()}"
    twin["resource"]["identifier"][0]["value"] = f"urn:uuid:{uuid.uuid4()}"
    bundle["entry"].append(twin)
    refused(fhir.post("", json=bundle), 409, ("duplicate", "Bundle.entry[3].resource.masterIdentifier", "twice"))
    nothing_stored(fhir, master_id)


def test_master_identifier_already_in_the_record_is_a_conflict(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    assert fhir.post("", json=provide_bundle(subject_of(known_patient), master_id)).status_code == 200
    again = provide_bundle(subject_of(known_patient), master_id, data=PDF + b"other")
    refused(fhir.post("", json=again), 409, ("duplicate", f"{DOCUMENT}.masterIdentifier", "already in the record"))


def test_master_identifier_without_system_is_unique_too(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    """Outside the PDSm profile (which requires a system), a bare value identifies the document."""
    def bare(bundle: dict) -> dict:
        document = bundle["entry"][1]["resource"]
        del document["masterIdentifier"]["system"]
        del document["meta"]
        return bundle

    first = fhir.post("", json=bare(provide_bundle(subject_of(known_patient), master_id)))
    assert first.status_code == 200, first.text
    again = bare(provide_bundle(subject_of(known_patient), master_id, data=PDF + b"other"))
    refused(fhir.post("", json=again), 409, ("duplicate", f"{DOCUMENT}.masterIdentifier", f"urn:oid:{master_id}"))
    # With a system it is another identifier (system|value), not this one.
    with_system = provide_bundle(subject_of(known_patient), master_id, data=PDF + b"third")
    assert fhir.post("", json=with_system).status_code == 200


def test_bundle_without_document_reference_is_refused(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    bundle = provide_bundle(subject_of(known_patient), master_id)
    del bundle["entry"][1]
    bundle["entry"][0]["resource"]["entry"] = []
    response = fhir.post("", json=bundle)
    assert response.status_code == 422, response.text
    issue = response.json()["issue"][0]
    assert (issue["severity"], issue["code"]) == ("error", "required") and "DocumentReference" in issue["diagnostics"]
    nothing_stored(fhir, master_id)


def test_subject_not_in_the_record_is_refused(fhir: httpx.Client, master_id: str) -> None:
    response = fhir.post("", json=provide_bundle({"reference": "Patient/nobody-here"}, master_id))
    refused(response, 422, ("not-found", "Bundle.entry[0].resource.subject", "Patient/nobody-here"))
    nothing_stored(fhir, master_id)


def test_deleted_subject_is_refused(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    fhir.delete(f"/Patient/{known_patient['id']}")
    response = fhir.post("", json=provide_bundle(subject_of(known_patient), master_id))
    refused(response, 422, ("not-found", "Bundle.entry[0].resource.subject", known_patient["id"]))


def test_subject_by_ins_must_name_exactly_one_patient(fhir: httpx.Client, master_id: str) -> None:
    ins = "2" + uuid.uuid4().int.__str__()[:14]
    by_ins = {"identifier": {"system": INS_TEST, "value": ins}}
    refused(fhir.post("", json=provide_bundle(by_ins, master_id)), 422,
            ("not-found", "Bundle.entry[0].resource.subject", ins))
    first = fhir.post("/Patient", json=patient(ins)).json()
    response = fhir.post("", json=provide_bundle(by_ins, master_id))
    assert response.status_code == 200, response.text
    for entry in response.json()["entry"][:2]:
        stored = fhir.get("/" + entry["response"]["location"].split("/_history")[0]).json()
        assert stored["subject"] == {**by_ins, "reference": f"Patient/{first['id']}"}
    fhir.post("/Patient", json=patient(ins))
    refused(fhir.post("", json=provide_bundle(by_ins, master_id + ".1")), 422,
            ("not-found", "Bundle.entry[0].resource.subject", "No single patient"))


@pytest.mark.parametrize("subject", [
    {"identifier": {"system": "urn:oid:1.2.250.1.999.1.1.1", "value": "IPP-42"}},
    {"identifier": {"system": INS_TEST}},
    {"display": "Marie DURAND"},
    {"reference": "Practitioner/someone"},
])
def test_subject_neither_patient_reference_nor_ins_is_refused(fhir: httpx.Client, master_id: str, subject: dict) -> None:
    refused(fhir.post("", json=provide_bundle(subject, master_id)), 422,
            ("required", "Bundle.entry[0].resource.subject", "by id or by INS"))
    nothing_stored(fhir, master_id)


def test_data_that_is_not_base64_is_refused(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    bundle = provide_bundle(subject_of(known_patient), master_id)
    bundle["entry"][2]["resource"]["data"] = "%%%" + base64.b64encode(PDF).decode()
    response = fhir.post("", json=bundle)
    assert response.status_code == 400, response.text
    nothing_stored(fhir, master_id)


def test_every_content_of_a_document_is_checked(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    """A first content naming a Binary already in the record, or naming nothing, does not end the checks."""
    stored = fhir.post("/Binary", content=PDF, headers={"Content-Type": "application/pdf"}).json()
    for first_url, first_issue in ((f"Binary/{stored['id']}", []), (f"urn:uuid:{uuid.uuid4()}", [("required", f"{ATTACHMENT}.url", "names no Binary")])):
        bundle = provide_bundle(subject_of(known_patient), master_id, hash_=sha1(b"other"))
        document = bundle["entry"][1]["resource"]
        del document["meta"]  # the PDSm profile allows one content
        second = copy.deepcopy(document["content"][0])
        document["content"][0]["attachment"] = {**second["attachment"], "url": first_url, "hash": sha1(PDF)}
        document["content"].append(second)
        refused(fhir.post("", json=bundle), 422, *first_issue,
                ("value", f"{DOCUMENT}.content[1].attachment.hash", sha1(PDF)))
        nothing_stored(fhir, master_id)


def test_document_without_master_identifier_does_not_end_the_uniqueness_check(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    assert fhir.post("", json=provide_bundle(subject_of(known_patient), master_id)).status_code == 200
    bundle = provide_bundle(subject_of(known_patient), master_id, data=PDF + b"other")
    first = copy.deepcopy(bundle["entry"][1])
    first["fullUrl"] = f"urn:uuid:{uuid.uuid4()}"
    del first["resource"]["masterIdentifier"], first["resource"]["meta"]
    first["resource"]["identifier"][0]["value"] = f"urn:uuid:{uuid.uuid4()}"
    bundle["entry"].insert(1, first)
    refused(fhir.post("", json=bundle), 409, ("duplicate", "Bundle.entry[2].resource.masterIdentifier", "already in the record"))


def test_versioned_subject_reference_is_refused(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    subject = {"reference": f"Patient/{known_patient['id']}/_history/1"}
    refused(fhir.post("", json=provide_bundle(subject, master_id)), 422,
            ("not-found", "Bundle.entry[0].resource.subject", "not a patient of the record"))


def test_only_the_document_and_submission_set_subjects_are_resolved(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    bundle = provide_bundle(subject_of(known_patient), master_id)
    note = {"resourceType": "Observation", "status": "final", "code": {"text": "note"}, "subject": {"display": "someone"}}
    bundle["entry"].append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": note, "request": {"method": "POST", "url": "Observation"}})
    response = fhir.post("", json=bundle)
    assert response.status_code == 200, response.text
    location = response.json()["entry"][3]["response"]["location"].split("/_history")[0]
    assert fhir.get(f"/{location}").json()["subject"] == {"display": "someone"}
