"""Shared paths of the HL7 v2 adapter tests."""

from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = Path(__file__).parent / "golden"


def fixture(name: str) -> bytes:
    """One of the project's own HL7 v2 fixture messages, by file name."""
    return (FIXTURES / name).read_bytes()
