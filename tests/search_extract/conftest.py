import json
from pathlib import Path

import pytest

from fhir_server.search.parameters import SearchParameterRegistry, parameter_files

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "profiles"
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def registry() -> SearchParameterRegistry:
    return SearchParameterRegistry.load(parameter_files(PROFILES))


def load_fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))
