"""What a write skips because an ingest adapter's check just passed the same content
(fhir_server.validation.passed): only that content, against profiles of the same source."""

from __future__ import annotations

import copy

import pytest

from fhir_server.config import Settings
from fhir_server.errors import FhirError
from fhir_server.validation.passed import Passed
from fhir_server.validation.profile_registry import ProfileRegistry
from fhir_server.validation.validator import validate_resource
from fhir_server.validation_step import make_validator
from fhir_server.validation import passed as passed_module
from tests.mhd.documents import PDF, document_reference, sha1


def _document() -> dict:
    attachment = {"contentType": "application/pdf", "language": "fr-FR", "url": "Binary/b1", "size": len(PDF),
                  "hash": sha1(PDF), "title": "Lettre de liaison", "creation": "2026-07-01T09:50:00+02:00"}
    return document_reference({"reference": "Patient/p1"}, "1.2.250.1.999.7.1", attachment)


@pytest.fixture(scope="module")
def registry() -> ProfileRegistry:
    return ProfileRegistry.load(Settings().profiles_dir, Settings().waivers())


def test_only_the_same_content_against_the_same_profiles_is_seen(registry: ProfileRegistry) -> None:
    memo = Passed(capacity=2)
    document = _document()
    assert not [i for i in validate_resource(document, None, registry) if i.severity == "error"]
    memo.remember(registry, document)
    assert memo.seen(registry, copy.deepcopy(document))
    assert memo.seen(ProfileRegistry.load(Settings().profiles_dir, Settings().waivers()), document)
    changed = {**document, "status": "superseded"}
    assert not memo.seen(registry, changed)
    # A registry made in code says nothing of where its profiles come from: never seen.
    assert not memo.seen(ProfileRegistry({}, {}, {}), document)
    memo.remember(registry, changed)
    memo.remember(registry, {**document, "status": "entered-in-error"})
    assert not memo.seen(registry, document)  # the oldest left when the memo is full


def test_a_write_of_content_that_passed_is_not_checked_again_and_other_content_still_is(
        registry: ProfileRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    memo = Passed()
    monkeypatch.setattr(passed_module, "PASSED", memo)
    monkeypatch.setattr("fhir_server.validation_step.PASSED", memo)
    validate = make_validator(registry)
    document = _document()
    memo.remember(registry, document)
    checked: list[dict] = []
    monkeypatch.setattr("fhir_server.validation_step.check_base_structure",
                        lambda resource, reg: checked.append(resource) or [])
    validate(document)
    assert checked == []
    validate({**document, "status": "superseded"})
    assert len(checked) == 1


def test_content_that_failed_is_refused_however_often_it_comes(registry: ProfileRegistry) -> None:
    validate = make_validator(registry)
    document = _document()
    del document["type"]
    for _ in range(2):
        with pytest.raises(FhirError) as refused:
            validate(document)
        assert refused.value.status == 422
