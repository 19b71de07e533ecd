"""Conditional interactions and `$validate` never reveal a hidden resource (issue 12): their
matching looks at what the caller may see, and a collision with a hidden resource answers 409
naming only what the caller sent (docs/DECISIONS: identity never forks). They never overwrite,
patch or delete a resource the caller cannot see, and never count it in a 412.

Dr D, an authorised pharmacist, does not see documents masked by Dr A; each probe is compared
with the same request naming an identifier nobody holds, or with its effect on a visible document.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.access.world import PHARMACIST, Document, World, new_finess, not_found_shape, open_world
from tests.server_process import ServerProcess

URI = "urn:ietf:rfc:3986"
SHARED = "http://example.org/fhir-server/tests/shared-identifier"


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    world = open_world(server)
    world.practitioner("A")
    world.practitioner("D", profession=PHARMACIST)
    world.practitioner("N")
    world.system("H", new_finess())
    world.patient_id, world.ins = world.patient()
    for name in ("A", "D"):
        world.consent(world.patient_id, "permit", world.professionals[name])
    shared = (SHARED, f"shared-{world.unique}")
    world.deposit("masked", "A", labels=("MASQUE_PS",), author=world.professionals["A"])
    # The destructive probes each aim at a masked document of their own.
    for key in ("masked_for_delete", "masked_for_patch"):
        world.deposit(key, "A", labels=("MASQUE_PS",), author=world.professionals["A"])
    world.deposit("plain", "H")
    world.deposit("shared_plain", "H", identifiers=(shared,))
    world.deposit("shared_masked", "A", labels=("MASQUE_PS",), author=world.professionals["A"], identifiers=(shared,))
    yield world
    world.http.close()


def _current(world: World, document: Document) -> dict[str, Any]:
    response = world.get("platform", f"/DocumentReference/{document.id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _body_for(world: World, key: str, match: tuple[str, str]) -> dict[str, Any]:
    """A DocumentReference of the record carrying the identifier the condition names."""
    body = copy.deepcopy(_current(world, world.documents[key]))
    for name in ("id", "meta"):
        body.pop(name, None)
    body["identifier"] = [{"system": match[0], "value": match[1]}]
    body["description"] = f"written by a conditional interaction {uuid.uuid4().hex}"
    return body


def _leaks(world: World, response: httpx.Response, *keys: str) -> list[str]:
    """Hidden documents named anywhere in the answer (body or headers)."""
    text = response.text + " ".join(response.headers.values())
    return [k for k in keys if world.documents[k].id in text]


def _unchanged(world: World, key: str) -> None:
    assert _current(world, world.documents[key])["meta"]["versionId"] == "1", key


def _masked_match(world: World, key: str = "masked") -> tuple[str, str]:
    return (URI, world.documents[key].identifier)


def test_conditional_create_matching_a_hidden_document_does_not_return_it(world: World) -> None:
    match = _masked_match(world)
    response = world.request("D", "POST", "/DocumentReference", json=_body_for(world, "plain", match),
                             headers={"If-None-Exist": f"identifier={match[0]}|{match[1]}"})
    assert response.status_code in (201, 409), response.text
    assert _leaks(world, response, "masked") == []
    _unchanged(world, "masked")


def test_conditional_create_matching_a_visible_document_returns_it(world: World) -> None:
    """The control: a match the caller sees is answered 200 with nothing created."""
    match = (URI, world.documents["plain"].identifier)
    response = world.request("D", "POST", "/DocumentReference", json=_body_for(world, "plain", match),
                             headers={"If-None-Exist": f"identifier={match[0]}|{match[1]}"})
    assert response.status_code == 200, response.text


def test_conditional_update_matching_a_hidden_document_never_overwrites_it(world: World) -> None:
    match = _masked_match(world)
    response = world.request("D", "PUT", "/DocumentReference", params={"identifier": f"{match[0]}|{match[1]}"},
                             json=_body_for(world, "plain", match))
    assert response.status_code in (201, 409), response.text
    assert _leaks(world, response, "masked") == []
    _unchanged(world, "masked")


def test_conditional_update_does_not_count_hidden_matches(world: World) -> None:
    """One visible and one hidden document share an identifier: no 412 'multiple matches' (which
    would count the hidden one), and the hidden one is not overwritten."""
    shared = (SHARED, f"shared-{world.unique}")
    response = world.request("D", "PUT", "/DocumentReference", params={"identifier": f"{shared[0]}|{shared[1]}"},
                             json=_body_for(world, "shared_plain", shared))
    assert response.status_code in (200, 409), response.text
    assert _leaks(world, response, "shared_masked") == []
    _unchanged(world, "shared_masked")


def test_conditional_update_by_the_author_does_see_both(world: World) -> None:
    """The control: Dr A sees both documents, so the same condition has two matches: 412."""
    shared = (SHARED, f"shared-{world.unique}")
    response = world.request("A", "PUT", "/DocumentReference", params={"identifier": f"{shared[0]}|{shared[1]}"},
                             json=_body_for(world, "shared_plain", shared))
    assert response.status_code == 412, response.text


def _as_if_unknown(world: World, caller: str, method: str, key: str, **kwargs: Any) -> tuple[httpx.Response, httpx.Response]:
    """The request conditioned on a hidden document's identifier, and on one nobody holds."""
    nobody = f"urn:uuid:{uuid.uuid4()}"
    hidden = world.request(caller, method, "/DocumentReference",
                           params={"identifier": f"{URI}|{world.documents[key].identifier}"}, **kwargs)
    unknown = world.request(caller, method, "/DocumentReference", params={"identifier": f"{URI}|{nobody}"}, **kwargs)
    return hidden, unknown


def test_conditional_delete_of_a_hidden_document_answers_as_no_match(world: World) -> None:
    hidden, unknown = _as_if_unknown(world, "D", "DELETE", "masked_for_delete")
    assert not_found_shape(hidden, "") == not_found_shape(unknown, ""), (hidden.text, unknown.text)
    _unchanged(world, "masked_for_delete")


def test_conditional_patch_of_a_hidden_document_answers_as_no_match(world: World) -> None:
    patch = [{"op": "replace", "path": "/description", "value": "patched"}]
    hidden, unknown = _as_if_unknown(world, "D", "PATCH", "masked_for_patch", json=patch,
                                     headers={"Content-Type": "application/json-patch+json"})
    assert hidden.status_code == unknown.status_code, hidden.text
    assert not_found_shape(hidden, "") == not_found_shape(unknown, ""), (hidden.text, unknown.text)
    _unchanged(world, "masked_for_patch")


def test_an_unauthorised_professional_never_overwrites_by_condition(world: World) -> None:
    """Dr N may deposit in the record (rule 6) but reads nothing of it: a conditional update naming
    a document's identifier is refused with the record (403) or collides with a resource they
    cannot see (409), never an overwrite."""
    match = (URI, world.documents["plain"].identifier)
    response = world.request("N", "PUT", "/DocumentReference", params={"identifier": f"{match[0]}|{match[1]}"},
                             json=_body_for(world, "plain", match))
    assert response.status_code in (403, 409), response.text
    assert _leaks(world, response, "plain") == []
    _unchanged(world, "plain")


@pytest.mark.parametrize("mode", [None, "update", "delete"])
def test_validate_of_a_hidden_document_answers_as_for_one_that_never_existed(world: World, mode: str | None) -> None:
    body = _body_for(world, "plain", (URI, f"urn:uuid:{uuid.uuid4()}"))
    params = {"mode": mode} if mode else {}
    never = uuid.uuid4().hex
    hidden_id = world.documents["masked"].id
    hidden = world.request("D", "POST", f"/DocumentReference/{hidden_id}/$validate", params=params,
                           json={**body, "id": hidden_id})
    unknown = world.request("D", "POST", f"/DocumentReference/{never}/$validate", params=params, json={**body, "id": never})
    assert not_found_shape(hidden, hidden_id) == not_found_shape(unknown, never), (hidden.text, unknown.text)
