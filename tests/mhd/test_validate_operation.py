"""$validate over HTTP, and profiles enforced on writes that claim them."""

from __future__ import annotations

import uuid

import httpx

from tests.ingest.record_status import hospital_headers, refusing_patient
from tests.mhd.documents import INS_TEST, PDF, PDSM, document_reference, patient, provide_bundle, sha1

DMP_PATIENT = "https://fhir-server.example.org/StructureDefinition/dmp-patient"


def test_validate_conforming_and_not(fhir: httpx.Client) -> None:
    attachment = {"contentType": "application/pdf", "language": "fr-FR", "url": "Binary/x", "size": 1, "hash": "AAAA",
                  "title": "CR", "creation": "2026-07-02T08:30:00+02:00"}
    doc = document_reference({"reference": "Patient/p"}, "1.2.3", attachment)
    ok = fhir.post("/DocumentReference/$validate", json=doc).json()
    assert not [i for i in ok["issue"] if i["severity"] == "error"], ok
    del doc["masterIdentifier"]
    bad = fhir.post("/DocumentReference/$validate", json=doc).json()
    errors = [i for i in bad["issue"] if i["severity"] == "error"]
    assert errors and any("masterIdentifier" in e for i in errors for e in i.get("expression", []))


def test_validate_with_profile_parameter(fhir: httpx.Client) -> None:
    without_ins = {"resourceType": "Patient", "name": [{"family": "X"}]}
    response = fhir.post("/Patient/$validate", params={"profile": DMP_PATIENT}, json=without_ins).json()
    assert any(i["severity"] == "error" for i in response["issue"])
    parameters = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": patient("248039263001064")}, {"name": "profile", "valueUri": DMP_PATIENT}]}
    fine = fhir.post("/Patient/$validate", json=parameters).json()
    assert not [i for i in fine["issue"] if i["severity"] == "error"], fine


def test_write_claiming_a_profile_is_held_to_it(fhir: httpx.Client) -> None:
    claimed = {"resourceType": "Patient", "meta": {"profile": [DMP_PATIENT]}, "name": [{"family": "X"}]}
    response = fhir.post("/Patient", json=claimed)
    assert response.status_code == 422
    assert response.json()["resourceType"] == "OperationOutcome"


def test_capability_statement_declares_mhd(fhir: httpx.Client) -> None:
    statement = fhir.get("/metadata").json()
    assert any("IHE.MHD.DocumentRecipient" in url for url in statement["instantiates"])
    docref = [r for r in statement["rest"][0]["resource"] if r["type"] == "DocumentReference"][0]
    assert f"{PDSM}/pdsm-comprehensive-document-reference" in docref["supportedProfile"]


# ------------------------------------------------------------------ Bundle/$validate of an ITI-65 bundle
ATTACHMENT = "Bundle.entry[1].resource.content[0].attachment"


def errors_of(outcome: dict) -> list[tuple[str, str, list[str]]]:
    return [(i["severity"], i["code"], i.get("expression", [])) for i in outcome["issue"] if i["severity"] == "error"]


def test_validate_of_a_provide_bundle_reports_wrong_size_and_hash(fhir: httpx.Client, known_patient: dict,
                                                                  master_id: str) -> None:
    subject = {"reference": f"Patient/{known_patient['id']}"}
    good = fhir.post("/Bundle/$validate", json=provide_bundle(subject, master_id))
    assert good.status_code == 200 and errors_of(good.json()) == [], good.text
    bundle = provide_bundle(subject, master_id, size=len(PDF) + 1, hash_=sha1(b"other bytes"))
    outcome = fhir.post("/Bundle/$validate", json=bundle).json()
    assert errors_of(outcome) == [("error", "value", [f"{ATTACHMENT}.size"]), ("error", "value", [f"{ATTACHMENT}.hash"])]
    hash_issue = next(i for i in outcome["issue"] if i.get("expression") == [f"{ATTACHMENT}.hash"])
    assert sha1(PDF) in hash_issue["diagnostics"]
    # Validating stores nothing.
    assert fhir.get("/DocumentReference", params={"identifier": f"urn:ietf:rfc:3986|urn:oid:{master_id}"}).json()["total"] == 0


def test_validate_of_a_provide_bundle_tells_unknown_and_known_patients(fhir: httpx.Client, known_patient: dict,
                                                                      master_id: str) -> None:
    by_id = fhir.post("/Bundle/$validate", json=provide_bundle({"reference": "Patient/no-such-patient"}, master_id)).json()
    assert errors_of(by_id) == [("error", "not-found", ["Bundle.entry[0].resource.subject"]),
                                ("error", "not-found", ["Bundle.entry[1].resource.subject"])], by_id
    assert all("Patient/no-such-patient" in i["diagnostics"] for i in by_id["issue"] if i["severity"] == "error")
    unknown_ins = {"identifier": {"system": INS_TEST, "value": "1" + str(uuid.uuid4().int)[:14]}}
    by_ins = fhir.post("/Bundle/$validate", json=provide_bundle(unknown_ins, master_id)).json()
    assert errors_of(by_ins) == [("error", "not-found", ["Bundle.entry[0].resource.subject"]),
                                 ("error", "not-found", ["Bundle.entry[1].resource.subject"])], by_ins
    # A conditional reference resolves as the transaction resolves it.
    unknown_query = {"reference": f"Patient?identifier={INS_TEST}|{unknown_ins['identifier']['value']}"}
    by_query = fhir.post("/Bundle/$validate", json=provide_bundle(unknown_query, master_id)).json()
    assert [e[1] for e in errors_of(by_query)] == ["not-found", "not-found"], by_query
    # A known patient, named any of these ways, is no error.
    ins = known_patient["identifier"][0]["value"]
    for subject in ({"reference": f"Patient/{known_patient['id']}"}, {"identifier": {"system": INS_TEST, "value": ins}},
                    {"reference": f"Patient?identifier={INS_TEST}|{ins}"}):
        outcome = fhir.post("/Bundle/$validate", json=provide_bundle(subject, master_id)).json()
        assert errors_of(outcome) == [], (subject, outcome)


def test_validate_answers_for_a_hidden_patient_as_for_an_unknown_one(server, fhir: httpx.Client,  # type: ignore[no-untyped-def]
                                                                     master_id: str) -> None:
    """A hospital system may not see the Patient of an opposed record (docs/ACCESS-RULES.md): its
    $validate must not tell that patient exists, by id or by INS."""
    ins = "2" + str(uuid.uuid4().int)[:14]
    hidden = refusing_patient(fhir, patient(ins), "opposed")
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json", **hospital_headers(server)}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=60.0) as hospital:
        def diagnostics(subject: dict, shown: str) -> list[tuple[str, str, list[str], str]]:
            outcome = hospital.post("/Bundle/$validate", json=provide_bundle(subject, master_id)).json()
            return [(i["severity"], i["code"], i.get("expression", []), i["diagnostics"].replace(shown, "X"))
                    for i in outcome["issue"] if i["severity"] == "error"]

        assert diagnostics({"reference": f"Patient/{hidden['id']}"}, hidden["id"]) == \
            diagnostics({"reference": "Patient/never-stored"}, "never-stored") != []
        other = "1" + str(uuid.uuid4().int)[:14]
        assert diagnostics({"identifier": {"system": INS_TEST, "value": ins}}, ins) == \
            diagnostics({"identifier": {"system": INS_TEST, "value": other}}, other) != []
        # The platform, which sees every record, is told the patient is known.
        seen = fhir.post("/Bundle/$validate", json=provide_bundle({"reference": f"Patient/{hidden['id']}"}, master_id)).json()
        assert not [i for i in errors_of(seen) if i[1] == "not-found"], seen
