"""ITI-65 Provide Document Bundle, then what a Document Consumer finds (ITI-66, ITI-67) and retrieves (ITI-68)."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tests.mhd.documents import CDA, PDF, provide_bundle, sha1


def _submit(fhir: httpx.Client, bundle: dict) -> httpx.Response:
    return fhir.post("", json=bundle)


def _documents_of(fhir: httpx.Client, patient_id: str, **params: str) -> list[dict]:
    found = fhir.get("/DocumentReference", params={"patient": patient_id, **params}).json()
    return [e["resource"] for e in found.get("entry", []) if e["search"]["mode"] == "match"]


def test_pdf_document_is_stored_found_and_retrieved(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    subject = {"reference": f"Patient/{known_patient['id']}"}
    response = _submit(fhir, provide_bundle(subject, master_id))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "transaction-response"
    assert all(e["response"]["status"] == "201 Created" for e in body["entry"])
    docs = _documents_of(fhir, known_patient["id"], status="current", type="http://loinc.org|11490-0")
    assert [d["masterIdentifier"]["value"] for d in docs] == [f"urn:oid:{master_id}"]
    attachment = docs[0]["content"][0]["attachment"]
    retrieved = fhir.get(attachment["url"] if attachment["url"].startswith("/") else "/" + attachment["url"], headers={"Accept": "*/*"})
    assert retrieved.status_code == 200 and retrieved.content == PDF
    assert retrieved.headers["content-type"].startswith("application/pdf")
    lists = fhir.get("/List", params={"patient": known_patient["id"], "code": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes|submissionset"}).json()
    assert lists["total"] == 1
    assert lists["entry"][0]["resource"]["entry"][0]["item"]["reference"] == f"DocumentReference/{docs[0]['id']}"


def test_cda_document(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    subject = {"reference": f"Patient/{known_patient['id']}"}
    bundle = provide_bundle(subject, master_id, data=CDA, content_type="application/hl7-cda+xml", format_code="urn:asip:ci-sis:ldl-ses:2022")
    assert _submit(fhir, bundle).status_code == 200
    doc = _documents_of(fhir, known_patient["id"], format="urn:asip:ci-sis:ldl-ses:2022")[0]
    raw = fhir.get("/" + doc["content"][0]["attachment"]["url"], headers={"Accept": "application/hl7-cda+xml"})
    assert raw.content == CDA


def test_subject_given_by_ins_is_resolved(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    subject = {"identifier": known_patient["identifier"][0]}
    assert _submit(fhir, provide_bundle(subject, master_id)).status_code == 200
    docs = _documents_of(fhir, known_patient["id"])
    assert docs and docs[0]["subject"]["reference"] == f"Patient/{known_patient['id']}"


def test_duplicate_master_identifier_rejects_the_whole_bundle(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    subject = {"reference": f"Patient/{known_patient['id']}"}
    assert _submit(fhir, provide_bundle(subject, master_id)).status_code == 200
    again = _submit(fhir, provide_bundle(subject, master_id))
    assert again.status_code == 409
    assert again.json()["issue"][0]["code"] == "duplicate"
    assert len(_documents_of(fhir, known_patient["id"])) == 1
    assert fhir.get("/List", params={"patient": known_patient["id"]}).json()["total"] == 1


def test_hash_mismatch_is_refused_and_nothing_stored(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    subject = {"reference": f"Patient/{known_patient['id']}"}
    response = _submit(fhir, provide_bundle(subject, master_id, hash_=sha1(b"other bytes")))
    assert response.status_code == 422
    assert any(e.endswith("attachment.hash") for i in response.json()["issue"] for e in i.get("expression", []))
    assert _documents_of(fhir, known_patient["id"]) == []
    assert fhir.get("/List", params={"patient": known_patient["id"]}).json()["total"] == 0


def test_content_type_mismatch_is_refused_and_nothing_stored(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    """The DocumentReference says PDF, the Binary it points at says plain text: a consumer would
    be handed bytes under the wrong type, so the bundle is refused whole."""
    subject = {"reference": f"Patient/{known_patient['id']}"}
    bundle = provide_bundle(subject, master_id)
    binary = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Binary")
    binary["contentType"] = "text/plain"
    response = _submit(fhir, bundle)
    assert response.status_code == 422, response.text
    issues = response.json()["issue"]
    assert [e for i in issues for e in i.get("expression", [])] == ["Bundle.entry[1].resource.content[0].attachment.contentType"]
    assert _documents_of(fhir, known_patient["id"]) == []
    assert fhir.get("/List", params={"patient": known_patient["id"]}).json()["total"] == 0


def test_matching_content_type_with_parameters_is_compared_whole(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    subject = {"reference": f"Patient/{known_patient['id']}"}
    bundle = provide_bundle(subject, master_id, data=b"Compte rendu", content_type="text/plain; charset=utf-8")
    response = _submit(fhir, bundle)
    assert response.status_code == 200, response.text
    [doc] = _documents_of(fhir, known_patient["id"])
    assert doc["content"][0]["attachment"]["contentType"] == "text/plain; charset=utf-8"


def test_size_mismatch_is_refused(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    subject = {"reference": f"Patient/{known_patient['id']}"}
    response = _submit(fhir, provide_bundle(subject, master_id, size=len(PDF) + 1))
    assert response.status_code == 422
    assert any(e.endswith("attachment.size") for i in response.json()["issue"] for e in i.get("expression", []))


def test_unknown_patient_is_refused(fhir: httpx.Client, master_id: str) -> None:
    response = _submit(fhir, provide_bundle({"reference": "Patient/nobody-here"}, master_id))
    assert response.status_code == 422
    unknown_ins = {"identifier": {"system": "urn:oid:1.2.250.1.213.1.4.10", "value": "199999999999999"}}
    assert _submit(fhir, provide_bundle(unknown_ins, master_id)).status_code == 422
    assert fhir.get("/DocumentReference", params={"identifier": f"urn:ietf:rfc:3986|urn:oid:{master_id}"}).json()["total"] == 0


def test_invalid_metadata_is_refused_with_paths(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    bundle = provide_bundle({"reference": f"Patient/{known_patient['id']}"}, master_id)
    doc = bundle["entry"][1]["resource"]
    del doc["type"]
    doc["category"][0]["coding"][0]["code"] = "NOT-A-CLASS"
    response = _submit(fhir, bundle)
    assert response.status_code == 422, response.text
    expressions = [e for i in response.json()["issue"] for e in i.get("expression", [])]
    assert any("type" in e for e in expressions), expressions
    assert _documents_of(fhir, known_patient["id"]) == []


def test_replacement_supersedes_the_earlier_document(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    subject = {"reference": f"Patient/{known_patient['id']}"}
    _submit(fhir, provide_bundle(subject, master_id))
    first = _documents_of(fhir, known_patient["id"])[0]
    replacing = provide_bundle(subject, master_id + ".2", data=PDF + b"v2",
                               relates_to=[{"code": "replaces", "target": {"reference": f"DocumentReference/{first['id']}"}}])
    assert _submit(fhir, replacing).status_code == 200, "replacement refused"
    superseded = fhir.get(f"/DocumentReference/{first['id']}").json()
    assert superseded["status"] == "superseded"
    current = _documents_of(fhir, known_patient["id"], status="current")
    assert [d["masterIdentifier"]["value"] for d in current] == [f"urn:oid:{master_id}.2"]
    assert _documents_of(fhir, known_patient["id"], relatesto=f"DocumentReference/{first['id']}")[0]["id"] == current[0]["id"]


def test_cda_fills_what_the_sender_left_out(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    from pathlib import Path

    letter = (Path(__file__).parent.parent / "cda" / "fixtures" / "ldl_ses_discharge_letter.xml").read_bytes()
    # The document's own id is the masterIdentifier (XDS uniqueId = ClinicalDocument/id).
    letter = letter.replace(b'<id root="1.2.250.1.999.1.1.2.2024.1"/>', f'<id root="{master_id}"/>'.encode())
    subject = {"reference": f"Patient/{known_patient['id']}"}
    bundle = provide_bundle(subject, master_id, data=letter, content_type="application/hl7-cda+xml", format_code="urn:asip:ci-sis:ldl-ses:2022")
    doc = bundle["entry"][1]["resource"]
    bundle["meta"].pop("profile")
    doc["meta"].pop("profile")
    for element in ("custodian", "author", "securityLabel", "context"):
        doc.pop(element)
    response = _submit(fhir, bundle)
    assert response.status_code == 200, response.text
    stored = _documents_of(fhir, known_patient["id"])[0]
    assert stored["custodian"] and stored["author"] and stored["securityLabel"]
    assert stored["context"]["period"]["start"]
    assert stored["subject"] == subject and stored["masterIdentifier"]["value"] == f"urn:oid:{master_id}"


def _cda_bundle(subject: dict, master_id: str, fixture: str) -> dict:
    from pathlib import Path

    letter = (Path(__file__).parent.parent / "cda" / "fixtures" / fixture).read_bytes()
    # The document's own id is the masterIdentifier: the first <id> of a CDA is ClinicalDocument/id.
    letter = re.sub(rb"<id [^>]*/>", f'<id root="{master_id}"/>'.encode(), letter, count=1)
    bundle = provide_bundle(subject, master_id, data=letter, content_type="application/hl7-cda+xml", format_code="urn:asip:ci-sis:ldl-ses:2022")
    bundle["meta"].pop("profile")
    doc = bundle["entry"][1]["resource"]
    doc["meta"].pop("profile")
    for element in ("custodian", "author", "securityLabel", "context"):
        doc.pop(element)
    return bundle


def test_cda_is_found_among_other_binaries(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    """A PDF and a CDA nobody points at come first in the bundle: the CDA the document names is still read."""
    import base64

    subject = {"reference": f"Patient/{known_patient['id']}"}
    bundle = _cda_bundle(subject, master_id, "ldl_ses_discharge_letter.xml")
    cda_entry = bundle["entry"][2]
    others = [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": {"resourceType": "Binary", "contentType": content_type,
                                                                     "data": base64.b64encode(data).decode()},
               "request": {"method": "POST", "url": "Binary"}}
              for content_type, data in (("application/pdf", PDF), ("application/hl7-cda+xml", CDA))]
    bundle["entry"] = bundle["entry"][:2] + others + [cda_entry]
    response = _submit(fhir, bundle)
    assert response.status_code == 200, response.text
    stored = _documents_of(fhir, known_patient["id"])[0]
    assert stored["author"] and stored["custodian"] and stored["context"]["period"]["start"]
    assert "encounter" not in stored["context"]  # the converter's own Encounter is not part of this bundle


def test_level_1_cda_keeps_only_the_content_the_sender_sent(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    subject = {"reference": f"Patient/{known_patient['id']}"}
    response = _submit(fhir, _cda_bundle(subject, master_id, "level1_pdf.xml"))
    assert response.status_code == 200, response.text
    [stored] = _documents_of(fhir, known_patient["id"])
    assert len(stored["content"]) == 1
    assert stored["content"][0]["attachment"]["contentType"] == "application/hl7-cda+xml"


@pytest.mark.parametrize("missing", ["contentType", "data", "base64"])
def test_binary_lacking_what_a_cda_needs_is_refused_not_crashed_on(fhir: httpx.Client, known_patient: dict, master_id: str, missing: str) -> None:
    subject = {"reference": f"Patient/{known_patient['id']}"}
    bundle = _cda_bundle(subject, master_id, "ldl_ses_discharge_letter.xml")
    if missing == "base64":
        bundle["entry"][2]["resource"]["data"] = "%%% not base64 %%%"
    else:
        del bundle["entry"][2]["resource"][missing]
    response = _submit(fhir, bundle)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert _documents_of(fhir, known_patient["id"]) == []


def test_cda_with_media_type_parameters_is_read(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    subject = {"reference": f"Patient/{known_patient['id']}"}
    bundle = _cda_bundle(subject, master_id, "ldl_ses_discharge_letter.xml")
    for content_type in (bundle["entry"][1]["resource"]["content"][0]["attachment"], bundle["entry"][2]["resource"]):
        content_type["contentType"] = "application/hl7-cda+xml; charset=UTF-8"
    assert _submit(fhir, bundle).status_code == 200
    assert _documents_of(fhir, known_patient["id"])[0]["custodian"]


def test_bytes_sent_as_another_type_are_not_read_as_cda(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    subject = {"reference": f"Patient/{known_patient['id']}"}
    bundle = _cda_bundle(subject, master_id, "ldl_ses_discharge_letter.xml")
    bundle["entry"][1]["resource"]["content"][0]["attachment"]["contentType"] = "application/octet-stream"
    bundle["entry"][2]["resource"]["contentType"] = "application/octet-stream"
    assert _submit(fhir, bundle).status_code == 200
    stored = _documents_of(fhir, known_patient["id"])[0]
    assert "custodian" not in stored and "author" not in stored


def test_cda_of_a_put_document_reference_is_read(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    subject = {"reference": f"Patient/{known_patient['id']}"}
    bundle = _cda_bundle(subject, master_id, "ldl_ses_discharge_letter.xml")
    bundle["entry"][1]["request"] = {"method": "PUT", "url": f"DocumentReference/doc-{uuid.uuid4().hex[:12]}"}
    assert _submit(fhir, bundle).status_code == 200, "PUT DocumentReference refused"
    assert _documents_of(fhir, known_patient["id"])[0]["custodian"]


def test_a_cda_that_cannot_be_read_does_not_stop_the_next_one(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    import base64
    import copy

    subject = {"reference": f"Patient/{known_patient['id']}"}
    bundle = _cda_bundle(subject, master_id, "ldl_ses_discharge_letter.xml")
    broken_doc, broken_binary = copy.deepcopy(bundle["entry"][1]), copy.deepcopy(bundle["entry"][2])
    broken_binary["fullUrl"], broken_doc["fullUrl"] = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
    broken_binary["resource"]["data"] = base64.b64encode(b"<not-closed").decode()
    attachment = broken_doc["resource"]["content"][0]["attachment"]
    attachment.update(url=broken_binary["fullUrl"], size=len(b"<not-closed"), hash=sha1(b"<not-closed"))
    broken_doc["resource"]["masterIdentifier"]["value"] += ".9"
    broken_doc["resource"]["identifier"][0]["value"] = f"urn:uuid:{uuid.uuid4()}"
    bundle["entry"] = [bundle["entry"][0], broken_doc, broken_binary, bundle["entry"][1], bundle["entry"][2]]
    response = _submit(fhir, bundle)
    assert response.status_code == 200, response.text
    documents = {d["masterIdentifier"]["value"]: d for d in _documents_of(fhir, known_patient["id"])}
    assert "custodian" not in documents[f"urn:oid:{master_id}.9"]
    assert documents[f"urn:oid:{master_id}"]["custodian"]
