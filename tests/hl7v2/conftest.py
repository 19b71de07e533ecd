"""Shared paths of the HL7 v2 adapter tests."""

import base64
from pathlib import Path

import pytest

from fhir_server.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = Path(__file__).parent / "golden"


def fixture(name: str) -> bytes:
    """One of the project's own HL7 v2 fixture messages, by file name."""
    return (FIXTURES / name).read_bytes()


def _replacements(tag: str) -> tuple[tuple[bytes, bytes], ...]:
    digits = str(int(tag, 16) % 10**9)
    return (
        (b"180017512345678", f"1800175{digits}".encode()),
        (b"IPP0", f"IPP{tag}-0".encode()),
        (b"1.2.250.1.999.1.1.7.2024030", f"1.2.250.1.999.1.1.7.{digits}.2024030".encode()),
        (b"V2024-00", f"V{tag}-00".encode()),
        (b"RDV-100", f"RDV{tag}-100".encode()),
        (b"PRESC-", f"PRESC{tag}-".encode()),
        (b"CMD-77", f"CMD{tag}".encode()),
        (b"LAB-5501", f"LAB{tag}".encode()),
        (b"DOC-", f"DOC{tag}-".encode()),
    )


def personalised_cda(name: str, tag: str) -> bytes:
    """A CDA the fixtures carry, with the identifiers `personalised` gives the same tag."""
    return replaced((FIXTURES / name).read_bytes(), _replacements(tag))


def personalised(name: str, tag: str) -> bytes:
    """A fixture whose business identifiers belong to this test only (the store is shared),
    in the message and in the CDA it carries alike."""
    message = fixture(name)
    for carried in ("cda_imaging_report.xml", "cda_imaging_report_v2.xml"):
        cda = (FIXTURES / carried).read_bytes()
        message = message.replace(base64.b64encode(cda), base64.b64encode(personalised_cda(carried, tag)))
    return replaced(message, _replacements(tag))


def replaced(data: bytes, replacements: tuple[tuple[bytes, bytes], ...]) -> bytes:
    for old, new in replacements:
        data = data.replace(old, new)
    return data


# The sending facility of the fixtures (MSH-4 CHEXEMPLE; custodian 1.2.250.1.71.4.2.2|1999000001 of
# the CDA they carry), registered once as an operator would, through the running server.
FACILITY = ["--finess", "999000001", "--name", "Centre Hospitalier Exemple", "--msh4", "CHEXEMPLE",
            "--facility-type", "SA01", "--practice-setting", "ETABLISSEMENT"]


@pytest.fixture(scope="session", autouse=True)
def sending_facility(server) -> None:  # type: ignore[no-untyped-def]
    assert main(["facilities", "add", "--server", server.root_url, "--token", server.token, *FACILITY]) == 0
