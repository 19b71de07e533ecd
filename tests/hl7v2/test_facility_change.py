"""The sending facility's registration, or its absence, is remembered between documents
(fhir_server.facilities.Remembered, issue 18), and a registration added or changed through the server
is used from the next document on."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from fhir_server.cli import main
from tests.hl7v2.conftest import personalised_cda
from tests.server_process import ServerProcess, dedicated_server

CDA = {"Content-Type": "application/hl7-cda+xml"}
# The custodian the fixture's CDA names (urn:oid:1.2.250.1.71.4.2.2, "1" + FINESS).
FIXTURE_CUSTODIAN = b"1999000001"


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of one process: the registration is written and used by the same process (other
    workers use it within facilities.REMEMBERED_SECONDS, which `make test-all`'s four workers would
    make this test wait for)."""
    process = dedicated_server(tmp_path_factory.mktemp("facility-change") / "data", workers=1).start()
    yield process
    process.stop()


def _facility_type(server: ServerProcess, letter: bytes) -> str:
    answer = server.post(f"{server.root_url}/ingest/cda", content=letter, headers=CDA, timeout=60)
    assert answer.status_code == 201, answer.text
    return answer.json()["context"]["facilityType"]["coding"][0]["code"]


def test_a_facility_changed_through_the_server_is_used_for_the_next_document(one_process: ServerProcess) -> None:
    server = one_process
    finess = f"99{random.randrange(10**7):07d}"

    def register(facility_type: str) -> None:
        assert main(["facilities", "add", "--server", server.root_url, "--token", server.token, "--finess", finess,
                     "--name", f"Clinique {finess}", "--facility-type", facility_type,
                     "--practice-setting", "ETABLISSEMENT"]) == 0

    def letter(tag: str) -> bytes:
        return personalised_cda("cda_imaging_report.xml", tag).replace(FIXTURE_CUSTODIAN, f"1{finess}".encode())

    # Unregistered, the letter lacks what its facility would supply (and that answer is remembered too).
    unregistered = server.post(f"{server.root_url}/ingest/cda", headers=CDA, timeout=60,
                               content=letter(f"{random.randrange(16**6):06x}"))
    assert unregistered.status_code == 422 and "facilities add" in unregistered.text, unregistered.text
    register("SA01")
    assert _facility_type(server, letter(f"{random.randrange(16**6):06x}")) == "SA01"
    assert _facility_type(server, letter(f"{random.randrange(16**6):06x}")) == "SA01"
    register("SA04")
    assert _facility_type(server, letter(f"{random.randrange(16**6):06x}")) == "SA04"
