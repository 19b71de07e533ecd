"""The compiled walker gives the values fhirpathpy gives, wherever fhirpathpy can evaluate the expression.

fhirpathpy does not implement resolve(), does not treat `Resource.` as a prefix of every type, and
requires a single input on the left of `as`: those expressions are checked by the extraction tests.
"""

import json
from decimal import Decimal

import fhirpathpy
import pytest
from fhirpathpy.models import models

from tests.search_extract.conftest import FIXTURES, load_fixture

def _plain(value):
    # fhirpathpy hands decimals back as Decimal; JSON numbers are compared as numbers.
    return float(value) if isinstance(value, Decimal) else str(value)


FIXTURE_NAMES = sorted(path.name for path in FIXTURES.glob("*.json"))


def _comparable(param) -> bool:
    expression = param.expression
    return bool(expression) and not (
        "resolve()" in expression or expression.startswith("Resource.") or "as Boolean" in expression
    )


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_walker_agrees_with_fhirpathpy(registry, name):
    resource = load_fixture(name)
    compared = 0
    for param in registry.for_type(resource["resourceType"]):
        if not _comparable(param):
            continue
        try:
            expected = fhirpathpy.evaluate(resource, param.expression, {}, models["r4"])
        except ValueError:
            continue  # singleton required by fhirpathpy on the left of `as`
        actual = [value for _, value in param.evaluate(resource)]
        assert json.dumps(actual, sort_keys=True) == json.dumps(expected, sort_keys=True, default=_plain), param.code
        compared += bool(actual)
    assert compared >= 3
