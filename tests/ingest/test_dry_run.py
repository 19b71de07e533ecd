"""`?_dryRun=true` on POST /ingest/cda and POST /ingest/hl7v2 (issue 16): the whole intake runs and
answers what it would store, or refuses as the real intake does, and the record is left as it was:
searches count the same, nothing has a history, and the same document then really sent is stored."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cda.convert import convert_cda
from fhir_server.ingest.hl7v2 import er7
from tests.hl7v2.conftest import personalised
from tests.hl7v2.conftest import sending_facility  # noqa: F401 (autouse: the fixtures' facility is configured)
from tests.ingest.record_status import hospital_root  # noqa: F401 (fixture)
from tests.ingest.record_status import refusing_patient, total
from tests.server_process import server_token

CDA_FIXTURES = Path(__file__).parent.parent / "cda" / "fixtures"
CDA = {"Content-Type": "application/hl7-cda+xml"}
HL7 = {"Content-Type": "x-application/hl7-v2+er7"}
DRY = {"_dryRun": "true"}


@pytest.fixture(scope="module")
def root(server) -> httpx.Client:  # type: ignore[no-untyped-def]
    with server.client(server.root_url, timeout=60) as client:
        yield client


def discharge_letter(**changes: bytes) -> bytes:
    """The discharge letter fixture with a document id, an INS and visit ids of its own."""
    digits = str(uuid.uuid4().int)[:12]
    document = (CDA_FIXTURES / "ldl_ses_discharge_letter.xml").read_bytes().replace(
        b'extension="262077512345678"', f'extension="262{digits}"'.encode()).replace(
        b"IPP000417", f"IPP{digits}".encode()).replace(
        b"SEJ-2024-000417", f"SEJ-{digits}".encode()).replace(b"LDL-MED-", f"LDL-{digits}-".encode()).replace(
        b'"1.2.250.1.999.1.1.2.2024.1"', f'"1.2.250.1.999.1.1.2.{digits}.1"'.encode())
    for old, new in changes.items():
        document = document.replace(old.encode(), new)
    return document


def answer_parts(response: httpx.Response) -> tuple[list[dict[str, Any]], dict[str, Any], str | None]:
    """The outcome's issues, the bundle and the ACK of a dry run's Parameters."""
    assert response.status_code == 200, response.text
    assert response.json()["resourceType"] == "Parameters"
    parameters = {p["name"]: p for p in response.json()["parameter"]}
    assert (parameters["bundle"]["resource"]["resourceType"], parameters["bundle"]["resource"]["type"]) == \
        ("Bundle", "transaction")
    ack = parameters["ack"]["valueString"] if "ack" in parameters else None
    return parameters["outcome"]["resource"]["issue"], parameters["bundle"]["resource"], ack


def history(fhir: httpx.Client, reference: str) -> list[dict[str, Any]]:
    """The versions an instance history lists (none for an id never stored)."""
    response = fhir.get(f"/{reference}/_history")
    assert response.status_code in (200, 404), response.text
    return response.json().get("entry", []) if response.status_code == 200 else []


def would(issues: list[dict[str, Any]], resource_type: str, action: str) -> list[str]:
    """The ids of `resource_type` the outcome says `action` ("would be created", ...)."""
    return [i["diagnostics"].split()[0].split("/")[1] for i in issues
            if i["diagnostics"].startswith(f"{resource_type}/") and action in i["diagnostics"]]


def ingest_counts(server: Any, channel: str) -> dict[str, float]:
    """The server's `fhir_ingest_total` of `channel`, by outcome, as an operator scrapes it."""
    token = server_token(server.data_dir, server.base_url, "admin")
    response = httpx.get(f"{server.root_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200, response.text
    return {sample.labels["outcome"]: sample.value for family in text_string_to_metric_families(response.text)
            for sample in family.samples
            if sample.name == "fhir_ingest_total" and sample.labels.get("channel") == channel}


def test_cda_dry_run_answers_what_would_be_stored_and_stores_nothing(server: Any, root: httpx.Client,
                                                                     fhir: httpx.Client) -> None:
    started = (datetime.now(timezone.utc) - timedelta(seconds=2)).isoformat(timespec="seconds")
    counted = ingest_counts(server, "cda")
    document = discharge_letter()
    conversion = convert_cda(document)
    master = conversion.master_identifier
    by_master = {"identifier": f"{master['system']}|{master['value']}"}
    [patient_entry] = [e["resource"] for e in conversion.bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    ins = next(i for i in patient_entry["identifier"] if i["system"].startswith("urn:oid:1.2.250.1.213.1.4."))
    by_ins = {"identifier": f"{ins['system']}|{ins['value']}"}

    issues, bundle, ack = answer_parts(root.post("/ingest/cda", params=DRY, content=document, headers=CDA))
    assert ack is None and issues[0]["diagnostics"].startswith("Dry run: nothing was stored")
    [document_id] = would(issues, "DocumentReference", "would be created")
    [patient_id] = would(issues, "Patient", "would be created")
    [binary_id] = would(issues, "Binary", "would be created")
    planned = {e["fullUrl"].split("/fhir/", 1)[1]: e for e in bundle["entry"]}
    doc = planned[f"DocumentReference/{document_id}"]
    assert doc["request"] == {"method": "POST", "url": "DocumentReference"}
    assert doc["resource"]["subject"]["reference"] == f"Patient/{patient_id}"
    assert doc["resource"]["content"][0]["attachment"]["url"] == f"Binary/{binary_id}"
    assert planned[f"Patient/{patient_id}"]["resource"]["identifier"]
    # The outcome informs, it refuses nothing; each write it announces points at its entry of `bundle`.
    assert all(i["code"] == "informational" and i["severity"] in ("information", "warning") for i in issues)
    written = [i for i in issues if " would be " in i["diagnostics"]]
    assert [i["severity"] for i in [issues[0], *written]] == ["information"] * (len(written) + 1)
    assert [i["expression"] for i in written] == [[f"Bundle.entry[{n}]"] for n in range(len(bundle["entry"]))]
    assert [i["diagnostics"].split()[0] for i in written] == list(planned)

    # Nothing of it is in the record: no search finds it, no id answers, nothing has a history.
    assert total(fhir, "/DocumentReference", **by_master) == 0
    assert total(fhir, "/Patient", **by_ins) == 0
    for reference in (f"DocumentReference/{document_id}", f"Patient/{patient_id}", f"Binary/{binary_id}"):
        assert fhir.get(f"/{reference}").status_code == 404
        assert history(fhir, reference) == []
    # The request is in the audit trail, said to be a dry run, naming no patient that does not exist.
    trail = fhir.get("/AuditEvent", params={"date": f"ge{started}", "_count": "200"}).json()
    [event] = [e["resource"] for e in trail.get("entry", [])
               if "POST /ingest/cda?_dryRun=true: dry run" in e["resource"].get("outcomeDesc", "")
               and e["resource"]["period"]["start"] >= started]
    assert f"Patient/{patient_id}" not in str(event)
    # Operators' ingest counts are of documents taken in: a dry run is counted apart.
    after = ingest_counts(server, "cda")
    assert {k: v for k, v in after.items() if k != "dry-run"} == {k: v for k, v in counted.items() if k != "dry-run"}
    assert after["dry-run"] == counted.get("dry-run", 0) + 1

    # Nothing was left behind (no claim, no raw copy): the document then really sent is stored.
    stored = root.post("/ingest/cda", content=document, headers=CDA)
    assert stored.status_code == 201, stored.text
    assert total(fhir, "/DocumentReference", **by_master) == 1
    # Once stored, a dry run of it sees the duplicate: the document is already in the record.
    again, again_bundle, _ = answer_parts(root.post("/ingest/cda", params=DRY, content=document, headers=CDA))
    assert would(again, "DocumentReference", "already in the record") and not would(again, "DocumentReference", "would be created")
    # What storing would leave unchanged has no entry in the bundle to point at.
    unchanged = [i for i in again if "already in the record" in i["diagnostics"]]
    assert unchanged and all(i["severity"] == "information" and "expression" not in i for i in unchanged)
    assert not any(e["fullUrl"].endswith(f"/{i['diagnostics'].split()[0]}") for e in again_bundle["entry"] for i in unchanged)
    assert total(fhir, "/DocumentReference", **by_master) == 1


def test_cda_dry_run_refuses_as_the_real_intake(root: httpx.Client, hospital_root: httpx.Client,  # noqa: F811
                                                fhir: httpx.Client) -> None:
    # A document type outside the ANS table: refused by the PDSm check.
    unknown_type = discharge_letter(**{'code="11490-0"': b'code="00000-0"'})
    dry = root.post("/ingest/cda", params=DRY, content=unknown_type, headers=CDA)
    real = root.post("/ingest/cda", content=unknown_type, headers=CDA)
    assert dry.status_code == real.status_code == 422, dry.text
    assert dry.json()["issue"] == real.json()["issue"]
    # A record whose patient opposed: refused by the access rules, inside the transaction.
    document = discharge_letter()
    [patient_entry] = [e["resource"] for e in convert_cda(document).bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    refusing_patient(fhir, patient_entry, "opposed")
    dry = hospital_root.post("/ingest/cda", params=DRY, content=document, headers=CDA)
    real = hospital_root.post("/ingest/cda", content=document, headers=CDA)
    assert dry.status_code == real.status_code == 403, dry.text
    assert dry.json()["issue"] == real.json()["issue"]
    bad_flag = root.post("/ingest/cda", params={"_dryRun": "yes"}, content=document, headers=CDA)
    assert bad_flag.status_code == 400 and bad_flag.json()["issue"][0]["expression"] == ["_dryRun"]


def test_hl7v2_dry_run_answers_what_would_be_stored_and_stores_nothing(root: httpx.Client, fhir: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:8]
    message = personalised("mdm_t02.hl7", tag)
    patient_search = {"identifier": f"urn:oid:1.2.250.1.999.1.1.1|IPP{tag}-0042"}
    issues, bundle, ack = answer_parts(root.post("/ingest/hl7v2", params=DRY, content=message, headers=HL7))
    assert ack is not None and er7.parse(ack.encode()).text("MSA-1") == "AA"
    [document_id] = would(issues, "DocumentReference", "would be created")
    [provenance_id] = would(issues, "Provenance", "would be created")
    assert any(e["resource"]["resourceType"] == "DocumentReference" for e in bundle["entry"])
    assert total(fhir, "/Patient", **patient_search) == 0
    for reference in (f"DocumentReference/{document_id}", f"Provenance/{provenance_id}"):
        assert fhir.get(f"/{reference}").status_code == 404
        assert history(fhir, reference) == []
    # The message's trace (its Provenance) was not left behind: really sent, it is stored, not
    # answered as a message already processed.
    real = root.post("/ingest/hl7v2", content=message, headers=HL7)
    assert real.status_code == 200 and er7.parse(real.content).text("MSA-1") == "AA", real.text
    [patient] = fhir.get("/Patient", params=patient_search).json()["entry"]
    assert total(fhir, "/DocumentReference", subject=f"Patient/{patient['resource']['id']}") == 1
    assert fhir.get(f"/Provenance/{provenance_id}").status_code == 200


def test_hl7v2_dry_run_of_an_update_says_what_would_change_and_changes_nothing(root: httpx.Client,
                                                                             fhir: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:8]
    started = (datetime.now(timezone.utc) - timedelta(seconds=2)).isoformat(timespec="seconds")
    registered = root.post("/ingest/hl7v2", content=personalised("adt_a04.hl7", tag), headers=HL7)
    assert registered.status_code == 200 and er7.parse(registered.content).text("MSA-1") == "AA", registered.text
    [found] = fhir.get("/Patient", params={"identifier": f"urn:oid:1.2.250.1.999.1.1.1|IPP{tag}-0042"}).json()["entry"]
    patient = found["resource"]
    # A08 moves the patient from 12 to 14 rue des Lilas.
    issues, bundle, _ = answer_parts(root.post("/ingest/hl7v2", params=DRY, content=personalised("adt_a08.hl7", tag),
                                               headers=HL7))
    assert would(issues, "Patient", "would be updated") == [patient["id"]]
    [planned] = [e for e in bundle["entry"] if e["fullUrl"].endswith(f"/Patient/{patient['id']}")]
    assert planned["request"] == {"method": "PUT", "url": f"Patient/{patient['id']}"}
    assert "14 rue des Lilas" in str(planned["resource"]["address"])
    now = fhir.get(f"/Patient/{patient['id']}").json()
    assert now["meta"]["versionId"] == patient["meta"]["versionId"] and "12 rue des Lilas" in str(now["address"])
    # The patient exists: the dry run's audit trail names them (only patients it would create are left out).
    trail = fhir.get("/AuditEvent", params={"date": f"ge{started}", "_count": "200"}).json()
    [event] = [e["resource"] for e in trail.get("entry", [])
               if "POST /ingest/hl7v2?_dryRun=true: dry run" in e["resource"].get("outcomeDesc", "")
               and f"Patient/{patient['id']}" in str(e["resource"])]


def test_hl7v2_dry_run_refuses_with_the_real_ack(root: httpx.Client, fhir: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:8]
    message = personalised("mdm_t02_unknown_patient.hl7", tag)
    without_id = b"\r".join(s for s in message.split(b"\r") if not s.startswith(b"TXA|"))
    # The message with its TXA would be accepted: a dry run answers so, and the one without refused.
    _, _, accepted = answer_parts(root.post("/ingest/hl7v2", params=DRY, content=message, headers=HL7))
    assert accepted is not None and "MSA|AA" in accepted
    dry = root.post("/ingest/hl7v2", params=DRY, content=without_id, headers=HL7)
    real = root.post("/ingest/hl7v2", content=without_id, headers=HL7)
    assert dry.status_code == real.status_code == 422
    assert dry.headers["content-type"].startswith("x-application/hl7-v2+er7")

    def segments(ack: bytes) -> list[bytes]:
        # MSH-7 is the time of the answer: every other segment is the same.
        return [s for s in ack.split(b"\r") if s and not s.startswith(b"MSH")]

    assert segments(dry.content) == segments(real.content)
    assert er7.parse(dry.content).text("MSA-1") == "AE" and er7.parse(dry.content).text("ERR-3.1") == "101"
