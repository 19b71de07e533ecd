"""A CDA letter for a patient already in the record is written to the store at its commit (issue 18:
at most 6 store round trips per document is the target; fhir_server/storage/pending.py): its
transaction reads what it must first, then sends one write per collection and commits, where it
used to send each resource's `ids` entry and document as it went, and read the store between them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path


from fhir_server.cli import main as cli
from tests.hl7v2.conftest import FACILITY, personalised_cda
from tests.server_process import dedicated_server, recorded_commands

CDA = {"Content-Type": "application/hl7-cda+xml"}
REQUEST = "POST /ingest/cda"
# The audit trail commits apart (its group commit).
OUTSIDE = ("audit_events",)
# Commands of the second letter's request, counted with this change (before it: 21; the 75 KB letter of
# the benchmark, with three MedicationRequests, went from 33 to 19).
MOST = 17


def test_a_letter_for_a_known_patient_is_written_once_per_collection_at_its_commit(tmp_path: Path) -> None:
    log = tmp_path / "commands.jsonl"
    server = dedicated_server(tmp_path / "data", {"FHIR_COMMAND_LOG": str(log)}).start()
    try:
        assert cli(["facilities", "add", "--server", server.root_url, "--token", server.token, *FACILITY]) == 0
        first = personalised_cda("cda_imaging_report.xml", "5e11e2")
        with server.client(server.root_url, timeout=60) as client:
            assert client.post("/ingest/cda", content=first, headers=CDA).status_code == 201
            offset = log.stat().st_size
            # Another document (its id and set id) for the same patient, now in the record.
            answer = client.post("/ingest/cda", content=first.replace(b"20240301", b"20240311"), headers=CDA)
            assert answer.status_code == 201, answer.text
    finally:
        server.stop()
    lines = recorded_commands(log, offset)
    own = [line for line in lines if line["request"] == REQUEST and line["command"] not in ("hello", "endSessions")]
    commands = [(line["command"], line["collection"]) for line in own if line["collection"] not in OUTSIDE]
    commits = [i for i, (command, _) in enumerate(commands) if command == "commitTransaction"]
    assert len(commits) == 1, commands
    first_write = next(i for i, (command, _) in enumerate(commands) if command in ("insert", "update", "delete"))
    writes = commands[first_write:commits[0]]
    # No read between the writes, and each collection written once (claims: one update).
    assert all(command in ("insert", "update") for command, _ in writes), commands
    assert max(Counter(writes).values()) == 1, writes
    # The letter's bytes go with its Binary, in its transaction (storage/binaries.py).
    assert {"ids", "DocumentReference", "Binary", "blobs", "history"} <= {collection for _, collection in writes}
    assert len(own) <= MOST, [(line["command"], line["collection"]) for line in own]
