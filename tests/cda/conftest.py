"""Shared paths and helpers of the CDA conversion tests."""

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture
def fixture_bytes():
    """Read one of the project's own CDA fixtures by file stem."""

    def read(name: str) -> bytes:
        return (FIXTURES / f"{name}.xml").read_bytes()

    return read
