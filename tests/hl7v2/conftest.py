"""Shared paths of the HL7 v2 adapter tests."""

from pathlib import Path

import pytest

from fhir_server.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = Path(__file__).parent / "golden"


def fixture(name: str) -> bytes:
    """One of the project's own HL7 v2 fixture messages, by file name."""
    return (FIXTURES / name).read_bytes()


# The sending facility of the fixtures (MSH-4 CHEXEMPLE; custodian 1.2.250.1.71.4.2.2|1999000001 of
# the CDA they carry), registered once as an operator would, through the running server.
FACILITY = ["--finess", "999000001", "--name", "Centre Hospitalier Exemple", "--msh4", "CHEXEMPLE",
            "--facility-type", "SA01", "--practice-setting", "ETABLISSEMENT"]


@pytest.fixture(scope="session", autouse=True)
def sending_facility(server) -> None:  # type: ignore[no-untyped-def]
    assert main(["facilities", "add", "--server", server.root_url, *FACILITY]) == 0
