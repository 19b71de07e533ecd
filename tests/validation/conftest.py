from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from fhir_server.validation import ProfileRegistry

PROFILES_DIR = Path(__file__).resolve().parents[2] / "profiles"
FIXTURES_DIR = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def registry() -> ProfileRegistry:
    return ProfileRegistry.load(PROFILES_DIR)


@pytest.fixture
def fixture() -> Callable[[str], dict]:
    """A fresh copy of a conforming resource from fixtures/, safe to modify."""

    def load(name: str) -> dict:
        return json.loads((FIXTURES_DIR / name).read_text())

    return load
