"""`fhir-conformance validate FILE...` (conformance.validate): a tester's own ITI-65 bundles, CDA
documents and HL7 v2 messages, built here into files, checked offline as the intake checks them
and, for an ITI-65 bundle's subjects, by the server's Bundle/$validate with a real token."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx

from conformance.model import Result, Verdict
from conformance.validate import validate_files
from tests.hl7v2.conftest import FIXTURES as HL7_FIXTURES
from tests.ingest.record_status import HOSPITAL_FINESS
from tests.mhd.documents import PDF, provide_bundle, sha1
from tests.server_process import server_token

CDA_FIXTURES = Path(__file__).parent.parent / "cda" / "fixtures"


def verdicts(results: list[Result]) -> dict[str, Verdict]:
    return {r.id: r.verdict for r in results}


def by_id(results: list[Result], id_: str) -> Result:
    [found] = [r for r in results if r.id == id_]
    return found


def written(tmp_path: Path, name: str, content: bytes | dict) -> Path:
    path = tmp_path / name
    path.write_bytes(json.dumps(content).encode() if isinstance(content, dict) else content)
    return path


def test_an_iti65_bundle_offline(tmp_path: Path) -> None:
    good = written(tmp_path, "good.json", provide_bundle({"reference": "Patient/p"}, "1.2.250.1.999.1.1.7.1"))
    assert verdicts(validate_files([good], None, None)) == {
        "VALIDATE-ITI65-structure": Verdict.PASSED, "VALIDATE-ITI65-attachments": Verdict.PASSED,
        "VALIDATE-ITI65-patient": Verdict.NOT_RUN}
    bundle = provide_bundle({"reference": "Patient/p"}, "1.2.250.1.999.1.1.7.2", size=len(PDF) + 1, hash_=sha1(b"x"))
    del bundle["entry"][1]["resource"]["masterIdentifier"]
    results = validate_files([written(tmp_path, "bad.json", bundle)], None, None)
    structure, attachments = by_id(results, "VALIDATE-ITI65-structure"), by_id(results, "VALIDATE-ITI65-attachments")
    assert (structure.verdict, attachments.verdict) == (Verdict.FAILED, Verdict.FAILED)
    assert "Bundle.entry[1].resource.masterIdentifier" in structure.message and "bad.json" in structure.title
    attachment = "Bundle.entry[1].resource.content[0].attachment"
    assert f"{attachment}.size" in attachments.message and f"{attachment}.hash" in attachments.message
    assert sha1(PDF) in attachments.message
    assert attachments.requirement.spec == "IHE-ITI-65" and "hash" in attachments.requirement.text
    # A PDF Binary whose bytes are not a PDF: the server refuses disguised files, so does the validator.
    disguised = provide_bundle({"reference": "Patient/p"}, "1.2.250.1.999.1.1.7.3", data=b"MZ not a pdf at all")
    results = validate_files([written(tmp_path, "disguised.json", disguised)], None, None)
    assert "signature" in by_id(results, "VALIDATE-ITI65-attachments").message


def test_an_iti65_bundle_with_the_server_tells_an_unknown_patient(tmp_path: Path, server,  # type: ignore[no-untyped-def]
                                                                  fhir: httpx.Client) -> None:
    token = server_token(server.data_dir, server.base_url, "system", organization=HOSPITAL_FINESS)
    ins = "2" + str(uuid.uuid4().int)[:14]
    known = fhir.post("/Patient", json={"resourceType": "Patient", "identifier": [
        {"system": "urn:oid:1.2.250.1.213.1.4.10", "value": ins}], "name": [{"family": "VALIDATE"}]}).json()
    files = [written(tmp_path, "known.json", provide_bundle({"reference": f"Patient/{known['id']}"}, f"1.2.250.1.999.1.1.7.{ins}")),
             written(tmp_path, "unknown.json", provide_bundle({"reference": "Patient/never-stored"}, f"1.2.250.1.999.1.1.8.{ins}"))]
    results = validate_files(files, server.base_url, token)
    known_result, unknown_result = [r for r in results if r.id == "VALIDATE-ITI65-patient"]
    assert known_result.verdict == Verdict.PASSED, known_result.message
    assert unknown_result.verdict == Verdict.FAILED and "Patient/never-stored" in unknown_result.message
    assert [e.status for e in unknown_result.exchanges] == [200]
    assert unknown_result.exchanges[0].url.endswith("/Bundle/$validate")
    assert token not in str(unknown_result.to_json())
    # Nothing was stored: validating is not depositing.
    assert fhir.get("/DocumentReference", params={"subject": f"Patient/{known['id']}"}).json()["total"] == 0
    # A server that cannot be reached is an error of the run, not a verdict on the file.
    [unreachable] = [r for r in validate_files(files[:1], "http://127.0.0.1:9/fhir", token) if r.id == "VALIDATE-ITI65-patient"]
    assert unreachable.verdict == Verdict.ERROR and unreachable.exchanges[0].error


def test_a_cda_document(tmp_path: Path) -> None:
    letter = (CDA_FIXTURES / "ldl_ses_discharge_letter.xml").read_bytes()
    assert set(verdicts(validate_files([written(tmp_path, "letter.xml", letter)], None, None)).values()) == {Verdict.PASSED}
    not_cda = written(tmp_path, "invoice.xml", b'<?xml version="1.0"?><Invoice xmlns="urn:example"/>')
    [result] = validate_files([not_cda], None, None)
    assert (result.id, result.verdict) == ("VALIDATE-CDA-document", Verdict.FAILED) and "not-cda" in result.message
    unknown_type = written(tmp_path, "type.xml", letter.replace(b'code="11490-0"', b'code="00000-0"'))
    results = validate_files([unknown_type], None, None)
    pdsm = by_id(results, "VALIDATE-CDA-pdsm")
    assert pdsm.verdict == Verdict.FAILED and "DocumentReference.category" in pdsm.message, pdsm.message


def test_an_hl7v2_message(tmp_path: Path) -> None:
    message = (HL7_FIXTURES / "mdm_t02.hl7").read_bytes()
    # Kept with its MLLP framing, as a capture may be.
    results = validate_files([written(tmp_path, "mdm.hl7", b"\x0b" + message + b"\x1c\r")], None, None)
    assert verdicts(results) == {"VALIDATE-HL7V2-message": Verdict.PASSED, "VALIDATE-HL7V2-pdsm": Verdict.PASSED}
    # What its sending facility's configuration would supply is a warning, not a failure.
    assert "warning: DocumentReference.context.facilityType" in by_id(results, "VALIDATE-HL7V2-pdsm").message
    without_txa = b"\r".join(s for s in message.split(b"\r") if not s.startswith(b"TXA|"))
    [refused] = validate_files([written(tmp_path, "no-txa.hl7", without_txa)], None, None)
    assert refused.verdict == Verdict.FAILED and "AE, ERR 101" in refused.message and "TXA" in refused.message
    unsupported = message.replace(b"MDM^T02^MDM_T02", b"ZZZ^Z99^ZZZ_Z99", 1)
    [rejected] = validate_files([written(tmp_path, "zzz.hl7", unsupported)], None, None)
    assert rejected.verdict == Verdict.FAILED and "AR, ERR 200" in rejected.message


def test_a_file_of_no_known_kind_fails_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    [unknown] = validate_files([written(tmp_path, "notes.txt", b"hello")], None, None)
    assert unknown.verdict == Verdict.FAILED
    [missing] = validate_files([tmp_path / "absent.json"], None, None)
    assert missing.verdict == Verdict.ERROR
