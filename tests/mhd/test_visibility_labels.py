"""Visibility labels (TRE_A07) over HTTP: the metadata update changes one label and keeps the
others, and a document masked to professionals cannot also be invisible to the patient (issue 12,
rule 9), on every path that sets labels, unless FHIR_ALLOW_MASKED_INVISIBLE is on."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.mhd.documents import PDF, document_reference, patient, provide_bundle
from tests.mhd.test_advance_directives import VISIBILITY, deposit, document
from tests.server_process import ServerProcess, server_token

PATCH = {"Content-Type": "application/json-patch+json"}
REFUSAL = "cannot also be invisible to the patient"


def label(code: str) -> dict:
    return {"coding": [{"system": VISIBILITY, "code": code}]}


def codes(doc: dict) -> list[str]:
    return [c["code"] for item in doc.get("securityLabel", []) for c in item["coding"]]


def refused_saying_why(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(REFUSAL in issue["diagnostics"] for issue in outcome["issue"]), outcome


def nothing_stored(fhir: httpx.Client, patient_id: str) -> None:
    assert fhir.get("/DocumentReference", params={"patient": patient_id}).json()["total"] == 0


def test_metadata_update_changes_one_label_and_keeps_the_others(fhir: httpx.Client, known_patient: dict,
                                                                master_id: str) -> None:
    assert deposit(fhir, known_patient["id"], master_id, directive=False,
                   labels=["INVISIBLE_REPRESENTANTS_LEGAUX"]).status_code == 200
    url = f"/DocumentReference/{document(fhir, master_id)['id']}"
    assert codes(document(fhir, master_id)) == ["N", "INVISIBLE_REPRESENTANTS_LEGAUX"]
    masked = fhir.patch(url, headers=PATCH, content=json.dumps([{"op": "add", "path": "/securityLabel/-",
                                                                  "value": label("MASQUE_PS")}]))
    assert masked.status_code == 200, masked.text
    assert codes(document(fhir, master_id)) == ["N", "INVISIBLE_REPRESENTANTS_LEGAUX", "MASQUE_PS"]
    swapped = fhir.patch(url, headers=PATCH, content=json.dumps([{"op": "replace", "path": "/securityLabel/1",
                                                                   "value": label("INVISIBLE_PATIENT")},
                                                                  {"op": "remove", "path": "/securityLabel/2"}]))
    assert swapped.status_code == 200, swapped.text
    assert codes(document(fhir, master_id)) == ["N", "INVISIBLE_PATIENT"]
    assert document(fhir, master_id)["meta"]["versionId"] == "3"


def test_provide_bundle_masked_and_invisible_is_refused(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    response = deposit(fhir, known_patient["id"], master_id, directive=False, labels=["MASQUE_PS", "INVISIBLE_PATIENT"])
    refused_saying_why(response)
    nothing_stored(fhir, known_patient["id"])


def test_visibility_label_under_the_oid_is_refused(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    """Stored under TRE_A07's OID, MASQUE_PS would hide the document from nobody: refused saying so."""
    bundle = provide_bundle({"reference": f"Patient/{known_patient['id']}"}, master_id)
    bundle["entry"][1]["resource"]["securityLabel"].append(
        {"coding": [{"system": "urn:oid:1.2.250.1.213.1.1.4.13", "code": "MASQUE_PS"}]})
    response = fhir.post("", json=bundle)
    assert response.status_code == 422, response.text
    assert any(VISIBILITY in issue["diagnostics"] for issue in response.json()["issue"])
    nothing_stored(fhir, known_patient["id"])


def test_masked_alone_and_invisible_alone_are_accepted(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    for index, labels in enumerate((["MASQUE_PS"], ["INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX"],
                                    ["MASQUE_PS", "INVISIBLE_REPRESENTANTS_LEGAUX"])):
        response = deposit(fhir, known_patient["id"], f"{master_id}.{index}", directive=False, labels=labels)
        assert response.status_code == 200, response.text


def _masked(fhir: httpx.Client, patient_id: str, master_id: str) -> str:
    assert deposit(fhir, patient_id, master_id, directive=False, labels=["MASQUE_PS"]).status_code == 200
    return document(fhir, master_id)["id"]


def test_patch_adding_invisible_to_a_masked_document_is_refused(fhir: httpx.Client, known_patient: dict,
                                                                master_id: str) -> None:
    doc_id = _masked(fhir, known_patient["id"], master_id)
    add = json.dumps([{"op": "add", "path": "/securityLabel/-", "value": label("INVISIBLE_PATIENT")}])
    refused_saying_why(fhir.patch(f"/DocumentReference/{doc_id}", headers=PATCH, content=add))
    conditional = f"/DocumentReference?identifier=urn:ietf:rfc:3986|urn:oid:{master_id}"
    refused_saying_why(fhir.patch(conditional, headers=PATCH, content=add))
    stored = document(fhir, master_id)
    assert (stored["meta"]["versionId"], codes(stored)) == ("1", ["N", "MASQUE_PS"])


def test_update_to_masked_and_invisible_is_refused(fhir: httpx.Client, known_patient: dict, master_id: str) -> None:
    doc_id = _masked(fhir, known_patient["id"], master_id)
    stored = document(fhir, master_id)
    refused_saying_why(fhir.put(f"/DocumentReference/{doc_id}",
                                json={**stored, "securityLabel": [*stored["securityLabel"], label("INVISIBLE_PATIENT")]}))
    assert document(fhir, master_id)["meta"]["versionId"] == "1"


def test_create_and_simplified_publish_masked_and_invisible_are_refused(fhir: httpx.Client, known_patient: dict,
                                                                        master_id: str) -> None:
    attachment = {"contentType": "application/pdf", "language": "fr-FR", "data": base64.b64encode(PDF).decode(),
                  "title": "CR", "creation": "2026-07-02T08:30:00+02:00"}
    subject = {"reference": f"Patient/{known_patient['id']}"}
    published = document_reference(subject, master_id, attachment, profile="PDSm-SimplifiedPublish")
    published["securityLabel"] += [label("MASQUE_PS"), label("INVISIBLE_PATIENT")]
    refused_saying_why(fhir.post("/DocumentReference", json=published))
    plain = document_reference(subject, master_id, {"contentType": "application/pdf", "url": "https://documents.example.org/cr.pdf"})
    del plain["meta"]
    plain["securityLabel"] += [label("INVISIBLE_PATIENT"), label("MASQUE_PS")]
    refused_saying_why(fhir.post("/DocumentReference", json=plain))
    nothing_stored(fhir, known_patient["id"])


@pytest.fixture(scope="module")
def allowing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A server configured to accept documents both masked and invisible to the patient."""
    process = ServerProcess(Path(tmp_path_factory.mktemp("masked-invisible")) / "data",
                            env={"FHIR_ALLOW_MASKED_INVISIBLE": "1"}).start()
    try:
        with process.client(process.base_url, timeout=60.0) as client:
            yield client
    finally:
        process.stop()


def test_the_setting_allows_masked_and_invisible(allowing: httpx.Client, master_id: str) -> None:
    patient_id = allowing.post("/Patient", json=patient("248039263001064")).json()["id"]
    response = deposit(allowing, patient_id, master_id, directive=False, labels=["MASQUE_PS", "INVISIBLE_PATIENT"])
    assert response.status_code == 200, response.text
    assert codes(document(allowing, master_id)) == ["N", "MASQUE_PS", "INVISIBLE_PATIENT"]
    # The advance directives' own rule is not lifted by it.
    directive = deposit(allowing, patient_id, master_id + ".1", labels=["MASQUE_PS"])
    assert directive.status_code == 422 and "cannot be masked" in directive.text


def test_the_patient_masks_and_unmasks_their_document(server, fhir: httpx.Client, known_patient: dict,  # type: ignore[no-untyped-def]
                                                      master_id: str) -> None:
    """Issue 12 rule 9, with the patient's own token: masking adds one label, unmasking removes it,
    the others stay; the pair with INVISIBLE_PATIENT is refused to the patient too."""
    assert deposit(fhir, known_patient["id"], master_id, directive=False,
                   labels=["INVISIBLE_REPRESENTANTS_LEGAUX"]).status_code == 200
    doc_id = document(fhir, master_id)["id"]
    token = server_token(server.data_dir, server.base_url, "patient", ins=known_patient["identifier"][0]["value"])
    with httpx.Client(base_url=server.base_url, timeout=60.0,
                      headers={"Authorization": f"Bearer {token}", **PATCH}) as own:
        masked = own.patch(f"/DocumentReference/{doc_id}",
                           content=json.dumps([{"op": "add", "path": "/securityLabel/-", "value": label("MASQUE_PS")}]))
        assert masked.status_code == 200, masked.text
        assert codes(masked.json()) == ["N", "INVISIBLE_REPRESENTANTS_LEGAUX", "MASQUE_PS"]
        refused_saying_why(own.patch(f"/DocumentReference/{doc_id}", content=json.dumps(
            [{"op": "add", "path": "/securityLabel/-", "value": label("INVISIBLE_PATIENT")}])))
        unmasked = own.patch(f"/DocumentReference/{doc_id}",
                             content=json.dumps([{"op": "test", "path": "/securityLabel/2", "value": label("MASQUE_PS")},
                                                 {"op": "remove", "path": "/securityLabel/2"}]))
        assert unmasked.status_code == 200, unmasked.text
    assert codes(document(fhir, master_id)) == ["N", "INVISIBLE_REPRESENTANTS_LEGAUX"]
