import json
from pathlib import Path

import pytest

from fhir_server.search.parameters import SearchParameterRegistry

ROOT = Path(__file__).resolve().parents[2]
SEARCH_PARAMETERS = ROOT / "profiles" / "SearchParameter"
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def registry() -> SearchParameterRegistry:
    return SearchParameterRegistry.load(SEARCH_PARAMETERS)


def load_fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))
