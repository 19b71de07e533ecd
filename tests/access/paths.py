"""Every path of issue 12 ("Where it holds: everywhere") as a function of a world and a caller,
answering what the caller learnt about the world's documents: the keys of those it saw, a count,
or REFUSED (403 with an OperationOutcome: the record-level refusal).

A path that fails in another way (a 500, a hidden document's 404 that does not look like a
never-existing one's, a short page before the last) fails the test through its assertions.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.access.world import INS_NIA, REFUSED, Document, World, bundle_ids, is_refusal, not_found_shape

Outcome = frozenset[str] | int | str
PAGE = 2


def _keys(world: World, ids: set[str]) -> frozenset[str]:
    """The world's documents among `ids` (the server is shared: other modules' are ignored)."""
    return frozenset(k for k in (world.key_of(i) for i in ids) if k is not None)


def _searched(response: httpx.Response) -> dict[str, Any] | str:
    if is_refusal(response):
        return REFUSED
    assert response.status_code == 200, response.text
    return dict(response.json())


def _search_keys(world: World, caller: str, path: str, params: dict[str, str] | list[tuple[str, str]],
                 mode: str | None = None) -> Outcome:
    found = _searched(world.get(caller, path, params=params))
    return found if isinstance(found, str) else _keys(world, bundle_ids(found, mode=mode))


def _unknown(document: Document) -> Document:
    fresh = uuid.uuid4().hex
    return Document(fresh, fresh, fresh, fresh, fresh, f"/Binary/{fresh}")


def _per_document(world: World, caller: str, url: Callable[[Document], str], **kwargs: Any) -> Outcome:
    """Each document asked for on its own: 200 shows it, 404 hides it (and must look exactly like
    the 404 of a document that never existed), 403 refuses the whole record."""
    seen: set[str] = set()
    refusals = 0
    for key, document in world.documents.items():
        response = world.get(caller, url(document), **kwargs)
        if response.status_code == 200:
            seen.add(key)
        elif is_refusal(response):
            refusals += 1
        else:
            assert response.status_code == 404, (key, response.status_code, response.text)
            unknown = _unknown(document)
            never = world.get(caller, url(unknown), **kwargs)
            assert not_found_shape(response, document.id if document.id in url(document) else document.binary_id) == \
                not_found_shape(never, unknown.id), (key, response.text, never.text)
    if refusals:
        assert refusals == len(world.documents), f"refused for some documents only: {seen}"
        return REFUSED
    return frozenset(seen)


def read(world: World, caller: str) -> Outcome:
    return _per_document(world, caller, lambda d: f"/DocumentReference/{d.id}")


def vread(world: World, caller: str) -> Outcome:
    return _per_document(world, caller, lambda d: f"/DocumentReference/{d.id}/_history/1")


def instance_history(world: World, caller: str) -> Outcome:
    seen: set[str] = set()
    refusals = 0
    for key, document in world.documents.items():
        response = world.get(caller, f"/DocumentReference/{document.id}/_history")
        if is_refusal(response):
            refusals += 1
            continue
        never_id = uuid.uuid4().hex
        if response.status_code == 200 and bundle_ids(response.json()):
            assert bundle_ids(response.json()) == {document.id}
            seen.add(key)
            continue
        never = world.get(caller, f"/DocumentReference/{never_id}/_history")
        assert not_found_shape(response, document.id)[:2] == not_found_shape(never, never_id)[:2], (key, response.text)
        if response.status_code == 404:
            assert not_found_shape(response, document.id) == not_found_shape(never, never_id)
    if refusals:
        assert refusals == len(world.documents)
        return REFUSED
    return frozenset(seen)


def binary(world: World, caller: str) -> Outcome:
    return _per_document(world, caller, lambda d: f"/Binary/{d.binary_id}")


def iti68(world: World, caller: str) -> Outcome:
    """ITI-68: the attachment URL of the DocumentReference, raw content asked for."""
    return _per_document(world, caller, lambda d: d.attachment_url, headers={"Accept": "*/*"})


def search(world: World, caller: str) -> Outcome:
    return _search_keys(world, caller, "/DocumentReference", {"patient": world.patient_id, "_count": "100"})


def post_search(world: World, caller: str) -> Outcome:
    response = world.request(caller, "POST", "/DocumentReference/_search", data={"patient": world.patient_id},
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    found = _searched(response)
    return found if isinstance(found, str) else _keys(world, bundle_ids(found))


def total(world: World, caller: str) -> Outcome:
    found = _searched(world.get(caller, "/DocumentReference", params={"patient": world.patient_id,
                                                                       "_total": "accurate", "_count": "100"}))
    if isinstance(found, str):
        return found
    assert found["total"] == len(bundle_ids(found, mode="match")), found
    return int(found["total"])


def summary_count(world: World, caller: str) -> Outcome:
    found = _searched(world.get(caller, "/DocumentReference", params={"patient": world.patient_id,
                                                                       "_summary": "count"}))
    return found if isinstance(found, str) else int(found["total"])


def pages(world: World, caller: str, path: str, params: dict[str, str]) -> list[dict[str, Any]] | str:
    """Every page of a search, following `next` links."""
    found = _searched(world.get(caller, path, params={**params, "_count": str(PAGE)}))
    if isinstance(found, str):
        return found
    result = [found]
    while (following := next((link["url"] for link in result[-1].get("link", []) if link["relation"] == "next"), None)):
        assert len(result) < 50, "paging does not end"
        response = world.http.get(following, headers=world.headers(caller))
        assert response.status_code == 200, response.text
        result.append(response.json())
    return result


def paging(world: World, caller: str) -> Outcome:
    """Small pages followed to the end: every page but the last is full (a page shortened by a
    hidden document would tell it is there) and no document shows twice."""
    found = pages(world, caller, "/DocumentReference", {"patient": world.patient_id})
    if isinstance(found, str):
        return found
    sizes = [len(bundle_ids(page)) for page in found]
    assert all(size == PAGE for size in sizes[:-1]), sizes
    assert found[-1] is found[0] or sizes[-1] > 0, sizes
    seen = [i for page in found for i in bundle_ids(page)]
    assert len(seen) == len(set(seen)), seen
    return _keys(world, set(seen))


def iti67(world: World, caller: str) -> Outcome:
    """ITI-67 as an MHD Document Consumer asks: the patient by identifier, current documents."""
    return _search_keys(world, caller, "/DocumentReference", {"patient.identifier": f"{INS_NIA}|{world.ins}",
                                                             "status": "current"})


def chained(world: World, caller: str) -> Outcome:
    return _search_keys(world, caller, "/DocumentReference", {"subject:Patient.identifier": f"{INS_NIA}|{world.ins}"})


def compartment(world: World, caller: str) -> Outcome:
    return _search_keys(world, caller, f"/Patient/{world.patient_id}/DocumentReference", {})


def compartment_all(world: World, caller: str) -> Outcome:
    """The Patient compartment of every type (`/Patient/{id}/*`), here of the document types."""
    return _search_keys(world, caller, f"/Patient/{world.patient_id}/*",
                        {"_type": "DocumentReference,List", "_count": "100"})


def advance_directives(world: World, caller: str) -> Outcome:
    """An operation of the record ($advance-directives): the world holds none, so only who may ask
    is seen, and that it lists none of the world's documents."""
    return _search_keys(world, caller, f"/Patient/{world.patient_id}/$advance-directives", {})


def by_id(world: World, caller: str) -> Outcome:
    """Names no patient: searched in every record the caller may open."""
    ids = ",".join(d.id for d in world.documents.values())
    return _search_keys(world, caller, "/DocumentReference", {"_id": ids})


def system_search(world: World, caller: str) -> Outcome:
    ids = ",".join(d.id for d in world.documents.values())
    return _search_keys(world, caller, "/", {"_type": "DocumentReference", "_id": ids})


def has(world: World, caller: str) -> Outcome:
    """`_has` by each document's own identifier: the patient comes back only through a document
    the caller may see."""
    seen: set[str] = set()
    for key, document in world.documents.items():
        found = _searched(world.get(caller, "/Patient", params={
            "_has:DocumentReference:patient:identifier": f"urn:ietf:rfc:3986|{document.identifier}"}))
        if isinstance(found, str):
            return found
        assert bundle_ids(found, "Patient") <= {world.patient_id}
        if bundle_ids(found, "Patient"):
            seen.add(key)
    return frozenset(seen)


def include(world: World, caller: str) -> Outcome:
    """The submission sets (List) of the record, with the documents they list."""
    return _search_keys(world, caller, "/List", {"patient": world.patient_id, "_include": "List:item"}, mode="include")


def include_wildcard(world: World, caller: str) -> Outcome:
    """`_include=List:*`: every reference of the record's submission sets followed."""
    return _search_keys(world, caller, "/List", {"patient": world.patient_id, "_include": "List:*"}, mode="include")


def revinclude(world: World, caller: str) -> Outcome:
    return _search_keys(world, caller, "/Patient", {"_id": world.patient_id,
                                                    "_revinclude": "DocumentReference:subject"})


def revinclude_iterate(world: World, caller: str) -> Outcome:
    """From the caller's documents to the patient, and back to every document of the patient."""
    return _search_keys(world, caller, "/DocumentReference", [
        ("patient", world.patient_id), ("_include", "DocumentReference:subject"),
        ("_revinclude:iterate", "DocumentReference:subject")])


def include_iterate(world: World, caller: str) -> Outcome:
    """From the patient to their submission sets, and on to the documents those list."""
    return _search_keys(world, caller, "/Patient", [
        ("_id", world.patient_id), ("_revinclude", "List:subject"), ("_include:iterate", "List:item")])


def _history(world: World, caller: str, path: str) -> Outcome:
    found = pages(world, caller, path, {"_since": world.started, "_count": "200"})
    if isinstance(found, str):
        return found
    return _keys(world, {i for page in found for i in bundle_ids(page)})


def type_history(world: World, caller: str) -> Outcome:
    return _history(world, caller, "/DocumentReference/_history")


def system_history(world: World, caller: str) -> Outcome:
    return _history(world, caller, "/_history")


def _bundle_entries(world: World, caller: str, kind: str, requests: list[str]) -> httpx.Response:
    bundle = {"resourceType": "Bundle", "type": kind,
              "entry": [{"request": {"method": "GET", "url": url}} for url in requests]}
    return world.request(caller, "POST", "", json=bundle)


def batch(world: World, caller: str) -> Outcome:
    """A batch of reads of each document and a search of the record: the reads answer as alone."""
    keys = list(world.documents)
    requests = [f"DocumentReference/{world.documents[k].id}" for k in keys]
    response = _bundle_entries(world, caller, "batch", [*requests, f"DocumentReference?patient={world.patient_id}"])
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    statuses = [e["response"]["status"].split()[0] for e in entries]
    if all(s == "403" for s in statuses):
        return REFUSED
    assert set(statuses[:-1]) <= {"200", "404"}, statuses
    seen = {k for k, s in zip(keys, statuses, strict=False) if s == "200"}
    assert _keys(world, bundle_ids(entries[-1].get("resource", {}))) == seen, entries[-1]
    return frozenset(seen)


def transaction(world: World, caller: str) -> Outcome:
    """A transaction reading one document: it succeeds for a document the caller sees, and fails
    for a hidden one exactly as for one that never existed."""
    seen: set[str] = set()
    refusals = 0
    for key, document in world.documents.items():
        response = _bundle_entries(world, caller, "transaction", [f"DocumentReference/{document.id}"])
        if is_refusal(response):
            refusals += 1
        elif response.status_code == 200 and response.json()["entry"][0]["response"]["status"].startswith("200"):
            seen.add(key)
        else:
            never_id = uuid.uuid4().hex
            never = _bundle_entries(world, caller, "transaction", [f"DocumentReference/{never_id}"])
            assert not_found_shape(response, document.id) == not_found_shape(never, never_id), (key, response.text)
    if refusals:
        assert refusals == len(world.documents)
        return REFUSED
    return frozenset(seen)


@dataclass(frozen=True)
class Path:
    run: Callable[[World, str], Outcome]
    # The interaction names the patient's record: a caller who may not open it is refused (403);
    # otherwise it looks in every record the caller may open.
    names_record: bool = True
    # It answers a number: the count of what the caller may see.
    counts: bool = False
    # It names no record and answers through the Patient resource itself (`_has`).
    through_patient: bool = False


PATHS: dict[str, Path] = {
    "read": Path(read),
    "vread": Path(vread),
    "instance_history": Path(instance_history),
    "binary": Path(binary),
    "iti68": Path(iti68),
    "search": Path(search),
    "post_search": Path(post_search),
    "total": Path(total, counts=True),
    "summary_count": Path(summary_count, counts=True),
    "paging": Path(paging),
    "iti67": Path(iti67),
    "chained": Path(chained),
    "compartment": Path(compartment),
    "compartment_all": Path(compartment_all),
    "by_id": Path(by_id, names_record=False),
    "system_search": Path(system_search, names_record=False),
    "has": Path(has, names_record=False, through_patient=True),
    "include": Path(include),
    "include_wildcard": Path(include_wildcard),
    "revinclude": Path(revinclude),
    "revinclude_iterate": Path(revinclude_iterate),
    "include_iterate": Path(include_iterate),
    "type_history": Path(type_history, names_record=False),
    "system_history": Path(system_history, names_record=False),
    "batch": Path(batch),
    "transaction": Path(transaction),
    "advance_directives": Path(advance_directives),
}
# Paths whose answer holds no document whatever the caller sees: only the refusal is compared.
NO_DOCUMENTS = frozenset({"advance_directives"})
