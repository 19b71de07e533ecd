"""`fhir-server enrol` (issue 14, enrolment), run as an operator runs it, on the session's server
and its embedded store: rosters with good, duplicate, changed and broken lines; re-runs; a run
killed half-way and resumed; CSV; the notices (the mail spool of the data dir, the postal CSV);
`--base-url` with an insurer's token; and what the enrolled person then sees with their own token.
"""

from __future__ import annotations

import csv
import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.access.world import new_finess
from tests.record.rosters import INS_NIA, ins, new_prefix, patient, population, representative, write_ndjson
from tests.server_process import ServerProcess, server_token

STATUS = "https://fhir-server.example.org/StructureDefinition/record-status"
NOTICE = "https://fhir-server.example.org/StructureDefinition/record-notice-sent"
FHIR = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
TIMEOUT = 60.0


def enrol(*args: str | Path, expect: int = 0) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "fhir_server.cli", "enrol", *map(str, args), "--json", "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == expect, done.stderr
    return json.loads(done.stdout.splitlines()[-1]) if expect == 0 else {"stderr": done.stderr}


def counts(report: dict[str, Any]) -> tuple[int, int, int, int, int]:
    return report["created"], report["updated"], report["unchanged"], report["kept"], report["rejected"]


def find_patient(server: ServerProcess, value: str) -> list[dict[str, Any]]:
    found = server.get(f"{server.base_url}/Patient", params={"identifier": f"{INS_NIA}|{value}"}, headers=FHIR)
    assert found.status_code == 200, found.text
    return [e["resource"] for e in found.json().get("entry", [])]


def extension(resource: dict[str, Any], url: str) -> Any:
    found = [e for e in resource.get("extension", []) if e["url"] == url]
    return found[0] if found else None


def spool_messages(server: ServerProcess, address: str) -> list[email.message.EmailMessage]:
    spool = server.data_dir / "mail-spool"
    messages = []
    for path in spool.glob("*.eml") if spool.exists() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if address in str(message["To"]):
            messages.append(message)
    return messages


def wait_for(found: Callable[[], list[Any]], count: int = 1) -> list[Any]:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if len(got := found()) >= count:
            return got
        time.sleep(0.2)
    raise AssertionError(f"{len(found())} of {count} within {TIMEOUT}s")


def postal_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as rows:
        return list(csv.DictReader(rows))


@pytest.fixture
def prefix() -> str:
    return new_prefix()


def test_a_roster_with_good_duplicate_changed_and_broken_lines(server: ServerProcess, tmp_path: Path,
                                                               prefix: str) -> None:
    adult, child, mother, posted = ins(prefix, 1), ins(prefix, 2), ins(prefix, 3, sex="1"), ins(prefix, 4)
    alice = f"alice-{prefix}@example.org"
    mum = f"mum-{prefix}@example.org"
    lines: list[dict[str, Any] | bytes] = [
        patient(adult, email=alice, address=False),                                        # 1 created, e-mail
        patient(child, given="Leo", birth="2016-02-03", gender="male", address=False),     # 2 created (minor)
        representative(child, mother, email=mum),                                          # 3 his mother
        b'{"resourceType": "Patient", "identifier": [',                                    # 4 not JSON
        patient(adult, email=alice, address=False),                                        # 5 duplicate: unchanged
        {"resourceType": "Patient", "name": [{"family": "Sans"}]},                         # 6 no INS
        {**patient(ins(prefix, 5)), "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.2", "value": ins(prefix, 5)}]},  # 7 wrong OID
        patient(posted, given="Paul", gender="male"),                                      # 8 created, by post
        representative(ins(prefix, 9), mother),                                            # 9 unknown child
        {**patient(ins(prefix, 6)), "birthDate": "1980-13-45"},                            # 10 invalid date
        patient(ins(prefix, 7), address=False),                                            # 11 nobody to tell
    ]
    roster = write_ndjson(tmp_path / "roster.ndjson", lines)
    postal = tmp_path / "postal.csv"
    report = enrol("--data-dir", server.data_dir, "--postal-out", postal, roster)
    assert counts(report) == (3, 0, 1, 0, 6)
    assert report["notices"] == {"email": 2, "postal": 1}
    rejected = {r["line"]: r["reason"] for r in report["rejects"]}
    assert sorted(rejected) == [4, 6, 7, 9, 10, 11]
    assert "not JSON" in rejected[4]
    assert "no INS identifier" in rejected[6] and "found urn:oid:1.2.250.1.213.1.4.2" in rejected[7]
    assert "not the Patient line before it" in rejected[9]
    assert "birthDate" in rejected[10]
    assert "no e-mail and no postal address" in rejected[11]
    for value in (ins(prefix, 5), ins(prefix, 6), ins(prefix, 7)):
        assert find_patient(server, value) == []

    [stored] = find_patient(server, adult)
    assert extension(stored, STATUS)["valueCode"] == "pending"
    sent = extension(stored, NOTICE)["valueDateTime"]
    assert sent.endswith("Z")
    # The person's own token sees their record pending.
    token = server_token(server.data_dir, server.base_url, "patient", ins=adult)
    own = httpx.get(f"{server.base_url}/Patient/{stored['id']}", headers={**FHIR, "Authorization": f"Bearer {token}"})
    assert own.status_code == 200, own.text
    assert extension(own.json(), STATUS)["valueCode"] == "pending"
    # The mother reads her son's record through the RelatedPerson the roster gave.
    [son] = find_patient(server, child)
    related = server.get(f"{server.base_url}/RelatedPerson", params={"patient": f"Patient/{son['id']}"}, headers=FHIR)
    [link] = [e["resource"] for e in related.json()["entry"]]
    assert link["identifier"] == [{"system": INS_NIA, "value": mother}]
    token = server_token(server.data_dir, server.base_url, "patient", ins=mother, patient=son["id"])
    assert httpx.get(f"{server.base_url}/Patient/{son['id']}",
                     headers={**FHIR, "Authorization": f"Bearer {token}"}).status_code == 200

    # The notices: one e-mail to the adult, one to the child's mother, in French; a postal row for Paul.
    [message] = wait_for(lambda: spool_messages(server, alice))
    body = message.get_content()
    assert "sauf opposition" in str(message["Subject"]) and "vous y opposer" in body and adult in body
    wait_for(lambda: spool_messages(server, mum))
    rows = postal_rows(postal)
    assert [(r["ins"], r["recipient"]) for r in rows] == [(posted, "Paul Durand")]
    assert rows[0]["city"] == "Paris" and rows[0]["notice_date"] == extension(find_patient(server, posted)[0], NOTICE)["valueDateTime"]

    # Again: nothing changes, nobody is told twice.
    again = enrol("--data-dir", server.data_dir, "--postal-out", postal, roster)
    assert counts(again) == (0, 0, 4, 0, 6)
    assert again["notices"] == {"email": 0, "postal": 0}
    assert find_patient(server, adult)[0]["meta"]["versionId"] == stored["meta"]["versionId"]
    time.sleep(3)  # the mail worker looks at its queue every 2 s
    assert len(spool_messages(server, alice)) == 1 and len(postal_rows(postal)) == 1

    # A changed line is a new version, with the same notice date and no second notice.
    changed = write_ndjson(tmp_path / "changed.ndjson", [patient(adult, email=alice, address=True, family="Durand-Roy")])
    update = enrol("--data-dir", server.data_dir, "--postal-out", postal, changed)
    assert counts(update) == (0, 1, 0, 0, 0) and update["notices"] == {"email": 0, "postal": 0}
    [now] = find_patient(server, adult)
    assert now["name"][0]["family"] == "Durand-Roy" and int(now["meta"]["versionId"]) == int(stored["meta"]["versionId"]) + 1
    assert extension(now, NOTICE)["valueDateTime"] == sent


def test_an_opposed_record_stays_opposed(server: ServerProcess, tmp_path: Path, prefix: str) -> None:
    value = ins(prefix, 1)
    roster = write_ndjson(tmp_path / "roster.ndjson", [patient(value, email=f"o-{prefix}@example.org")])
    assert counts(enrol("--data-dir", server.data_dir, roster)) == (1, 0, 0, 0, 0)
    [stored] = find_patient(server, value)
    stored["extension"] = [{"url": STATUS, "valueCode": "opposed"}]
    assert server.request("PUT", f"{server.base_url}/Patient/{stored['id']}", json=stored, headers=FHIR).status_code == 200
    # A later roster with changed demographics leaves the record as the objection left it.
    changed = write_ndjson(tmp_path / "changed.ndjson", [patient(value, family="Autre", email=f"o-{prefix}@example.org")])
    report = enrol("--data-dir", server.data_dir, changed)
    assert counts(report) == (0, 0, 0, 1, 0) and report["notices"] == {"email": 0, "postal": 0}
    [after] = find_patient(server, value)
    assert extension(after, STATUS)["valueCode"] == "opposed" and after["name"][0]["family"] == "Durand"


def test_csv_roster(server: ServerProcess, tmp_path: Path, prefix: str) -> None:
    child, father = ins(prefix, 1), ins(prefix, 2, sex="1")
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "ins,ins_oid,family,given,birth_date,gender,email,address_line,postal_code,city,country,represents_ins,relationship\n"
        f"{child},1.2.250.1.213.1.4.10,Petit,Zoe Anne,2018-04-05,female,,3 rue Haute,69001,Lyon,FR,,\n"
        f"{father},1.2.250.1.213.1.4.10,Petit,Marc,,,,,,,,{child},FTH\n"
        f"{ins(prefix, 3)},1.2.250.1.213.1.4.10,Grand,Luc,1970-01-01,male,luc-{prefix}@example.org\n"
        f"{ins(prefix, 4)},1.2.250.1.213.1.4.10,Grand,Eva,1971-01-01,female,eva-{prefix}@example.org,,,,,,\n"
        f"12,1.2.250.1.213.1.4.10,Court,Ali,1971-01-01,male,ali-{prefix}@example.org,,,,,,\n",
        encoding="utf-8")
    postal = tmp_path / "postal.csv"
    report = enrol("--data-dir", server.data_dir, "--postal-out", postal, roster)
    assert counts(report) == (2, 0, 0, 0, 2)
    assert {r["line"]: r["reason"] for r in report["rejects"]}.keys() == {4, 6}
    [zoe] = find_patient(server, child)
    assert zoe["name"] == [{"family": "Petit", "given": ["Zoe", "Anne"]}] and zoe["address"][0]["city"] == "Lyon"
    assert [r["recipient"] for r in postal_rows(postal)] == ["Aux représentants légaux de Zoe Anne Petit"]
    related = server.get(f"{server.base_url}/RelatedPerson", params={"patient": f"Patient/{zoe['id']}"}, headers=FHIR)
    [link] = [e["resource"] for e in related.json()["entry"]]
    assert link["relationship"][0]["coding"][0]["code"] == "FTH"


def test_remote_enrolment_with_an_insurer_token(server: ServerProcess, tmp_path: Path, prefix: str) -> None:
    roster = write_ndjson(tmp_path / "roster.ndjson", [*population(prefix, 30), b"not json"])
    practitioner = server_token(server.data_dir, server.base_url, "practitioner", idnatps="8" + prefix + "00000",
                                profession="10")
    refused = enrol("--base-url", server.base_url, "--token", practitioner, roster, expect=1)
    assert "403" in refused["stderr"] and "insurer" in refused["stderr"]
    insurer = server_token(server.data_dir, server.base_url, "system", organization=new_finess(), role="insurer")
    report = enrol("--base-url", server.base_url, "--token", insurer, "--batch", "7", roster)
    assert counts(report) == (30, 0, 0, 0, 1) and report["rejects"] == [{"line": 34, "reason": report["rejects"][0]["reason"]}]
    assert report["notices"] == {"email": 20, "postal": 10}
    again = enrol("--base-url", server.base_url, "--token", insurer, roster)
    assert counts(again) == (0, 0, 30, 0, 1)
    [stored] = find_patient(server, ins(prefix, 0))
    assert extension(stored, STATUS)["valueCode"] == "pending"


def test_a_run_killed_half_way_resumes_to_the_same_end(server: ServerProcess, store: Any, tmp_path: Path,
                                                       prefix: str) -> None:
    persons = 300
    roster = write_ndjson(tmp_path / "roster.ndjson", population(prefix, persons))
    checkpoint = tmp_path / "checkpoint.json"
    postal = tmp_path / "postal.csv"
    command = [sys.executable, "-m", "fhir_server.cli", "enrol", "--data-dir", str(server.data_dir), "--quiet",
               "--batch", "20", "--checkpoint", str(checkpoint), "--postal-out", str(postal), str(roster)]
    running = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and running.poll() is None:
        if checkpoint.exists() and json.loads(checkpoint.read_text())["offset"] > 0:
            break
        time.sleep(0.05)
    assert running.poll() is None, "the run ended before it could be interrupted"
    running.send_signal(signal.SIGKILL)
    running.wait()
    first = json.loads(checkpoint.read_text())
    assert 0 < first["offset"] < roster.stat().st_size

    resumed = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout.splitlines()[-1])
    # The counts carry over the checkpoint: the batch cut off by the kill counts once, as created
    # or, if its commit made it before the kill, as unchanged.
    assert report["persons"] == persons and report["rejected"] == 0
    assert report["created"] + report["unchanged"] == persons and report["unchanged"] <= 20
    assert not checkpoint.exists()

    # Exactly what an uninterrupted run makes: one pending Patient per person, one RelatedPerson
    # per minor, one notice each (e-mail queued or sent, or a postal row).
    values = [ins(prefix, n) for n in range(persons)]
    keys = {f"{INS_NIA}|{v}" for v in values}
    found = [d for d in store["lookup"].find({"k": {"$regex": f"^Patient\\|identifier\\|{INS_NIA}\\|2{prefix}"}})]
    assert len(found) == persons and {d["k"].split("|", 2)[2] for d in found} == keys
    ids = {d["r"] for d in found}
    patients = list(store["Patient"].find({"pat": {"$in": sorted(ids)}}, {"res": 1}))
    assert len(patients) == persons
    assert all(extension(p["res"], STATUS)["valueCode"] == "pending" and extension(p["res"], NOTICE) for p in patients)
    assert all(p["res"]["meta"]["versionId"] == "1" for p in patients)
    assert store["RelatedPerson"].count_documents({"pat": {"$in": sorted(ids)}}) == persons // 10
    mails = {d["_id"].split("/")[1] for c in ("mail_queue", "mail_sent")
             for d in store[c].find({"_id": {"$regex": "^enrolment-notice/"}}, {"_id": 1})} & ids
    rows = postal_rows(postal)
    assert len(mails) == sum(1 for n in range(persons) if n % 3)
    assert len(rows) == len({r["ins"] for r in rows}) == sum(1 for n in range(persons) if n % 3 == 0)


def test_two_parts_share_one_roster(server: ServerProcess, tmp_path: Path, prefix: str) -> None:
    roster = write_ndjson(tmp_path / "roster.ndjson", [*population(prefix, 24), b"{broken"])
    first = enrol("--data-dir", server.data_dir, "--part", "1/2", roster)
    second = enrol("--data-dir", server.data_dir, "--part", "2/2", roster)
    # Each person once, in one part or the other; the line of no person reported by part 1 only.
    assert first["created"] + second["created"] == 24 and first["created"] and second["created"]
    assert (first["rejected"], second["rejected"]) == (1, 0)
    assert counts(enrol("--data-dir", server.data_dir, roster)) == (0, 0, 24, 0, 1)
