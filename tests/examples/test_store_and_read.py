"""Each official R4 example is stored under its own id, read back unchanged and found by `_id`."""

from __future__ import annotations

import httpx
import pytest

from tests.examples.conftest import INVALID, INVALID_AT, REFUSED_WITH, Stored, as_sent, without_server_meta
from tests.r4_examples import Example


def test_example_is_stored_and_read_back_unchanged(stored: dict[str, Stored], example_file: str) -> None:
    outcome = stored[example_file]
    assert outcome.status in (200, 201), outcome.outcome
    assert outcome.read_status == 200
    if outcome.read_back is not None:
        expected = without_server_meta({**outcome.sent, "id": outcome.id})
        changed = sorted(k for k in set(expected) | set(outcome.read_back) if expected.get(k) != outcome.read_back.get(k))
        pytest.fail(f"read back with other {changed}: {str({k: outcome.read_back.get(k) for k in changed})[:500]}")


def test_example_is_found_by_id(stored: dict[str, Stored], example_file: str) -> None:
    outcome = stored[example_file]
    assert outcome.found_by_id == [outcome.id]


def test_audit_events_are_created_not_updated(fhir: httpx.Client, stored: dict[str, Stored]) -> None:
    audits = [o for o in stored.values() if o.example.type == "AuditEvent"]
    assert audits and all(o.status == 201 and o.id != o.example.id for o in audits)


def test_subscriptions_are_stored_switched_off(fhir: httpx.Client, stored: dict[str, Stored]) -> None:
    subscriptions = [o for o in stored.values() if o.example.type == "Subscription"]
    assert subscriptions
    for outcome in subscriptions:
        assert fhir.get(f"/Subscription/{outcome.id}").json()["status"] == "off"


def test_invalid_example_is_refused_with_the_reason(fhir: httpx.Client, all_examples: list[Example],
                                                   invalid_file: str) -> None:
    example = next(e for e in all_examples if e.file == invalid_file)
    response = fhir.put(f"/{example.type}/{example.id}", json=as_sent(example))
    assert response.status_code == REFUSED_WITH.get(invalid_file, 400), (INVALID[invalid_file], response.text[:300])
    expressions = [x for issue in response.json()["issue"] for x in issue.get("expression", [])]
    where = INVALID_AT.get(invalid_file, "SearchParameter.base")
    assert where in expressions, (INVALID[invalid_file], expressions)
