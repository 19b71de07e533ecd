"""The create, update, patch and delete interactions (FHIR R4 http.html), conditional forms
included: what routes call, each write one store transaction through the repository, the caller's
resource checked by the before-write hooks first (Repository.prepare), the stored version
answered as it leaves the server (fhir_server.interactions.output)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_server.errors import FhirError
from fhir_server.interactions.output import outgoing
from fhir_server.security.callers import Caller
from fhir_server.storage.repository import Repository, Session, WriteResult, check_id


@dataclass
class Written:
    result: WriteResult
    # The stored version as the caller may receive it (None for a deletion or when withheld).
    resource: dict[str, Any] | None


async def _written(repository: Repository, caller: Caller, result: WriteResult) -> Written:
    return Written(result, await outgoing(repository, caller, result.stored, with_data=False))


async def create(repository: Repository, caller: Caller, resource_type: str, body: Any, *,
                 if_none_exist: str | None = None, raw: bytes | None = None) -> Written:
    resource = repository.prepare(caller, body, resource_type)
    return await _written(repository, caller,
                          await repository.create(caller, resource, if_none_exist=if_none_exist, raw=raw))


async def update(repository: Repository, caller: Caller, resource_type: str, resource_id: str, body: dict[str, Any], *,
                 if_match: int | None = None, raw: bytes | None = None) -> Written:
    repository.check_type(resource_type)
    check_id(resource_id)
    if raw is not None:
        body["id"] = resource_id
    if body.get("id") is None:
        raise FhirError(400, "required", "An update must carry the resource id in the body", ["id"])
    resource = repository.prepare(caller, body, resource_type)
    return await _written(repository, caller, await repository.update(caller, resource_type, resource_id, resource,
                                                                      if_match=if_match, raw=raw))


async def conditional_update(repository: Repository, caller: Caller, resource_type: str,
                             criteria: list[tuple[str, str]], body: Any, *, if_match: int | None = None) -> Written:
    repository.check_type(resource_type)
    resource = repository.prepare(caller, body, resource_type)
    return await _written(repository, caller, await repository.conditional_update(
        caller, resource_type, criteria, resource, if_match=if_match))


async def patch_in(repository: Repository, session: Session, caller: Caller, resource_type: str, resource_id: str,
                   operations: Any, *, if_match: int | None = None) -> WriteResult:
    """A JSON Patch inside a store transaction: the route's and a Bundle entry's alike."""
    current = await repository.read(caller, resource_type, resource_id, session)
    if if_match is not None and if_match != current.version:
        raise FhirError(412, "conflict", f"If-Match version {if_match} is not the current version ({current.version})")
    patched = repository.patched(caller, current, operations)
    return await repository.update_in(session, caller, resource_type, resource_id, patched,
                                      if_match=current.version, method="PATCH")


async def match_one(repository: Repository, session: Session, caller: Caller, resource_type: str,
                    criteria: list[tuple[str, str]]) -> str:
    """The one resource conditional patch criteria name."""
    matches = await repository.match_params(caller, resource_type, criteria, session, 2, hidden_absent=True)
    if len(matches) != 1:
        raise FhirError(412 if matches else 404, "multiple-matches" if matches else "not-found",
                        f"Conditional patch criteria match {'more than one' if matches else 'no'} {resource_type}")
    return matches[0]


async def patch(repository: Repository, caller: Caller, resource_type: str, resource_id: str, operations: Any, *,
                if_match: int | None = None) -> Written:
    async def work(session: Session) -> WriteResult:
        return await patch_in(repository, session, caller, resource_type, resource_id, operations, if_match=if_match)

    return await _written(repository, caller, await repository.run(work, [resource_type]))


async def conditional_patch(repository: Repository, caller: Caller, resource_type: str,
                            criteria: list[tuple[str, str]], operations: Any) -> Written:
    repository.check_type(resource_type)

    async def work(session: Session) -> WriteResult:
        resource_id = await match_one(repository, session, caller, resource_type, criteria)
        return await patch_in(repository, session, caller, resource_type, resource_id, operations)

    return await _written(repository, caller, await repository.run(work, [resource_type]))


async def delete(repository: Repository, caller: Caller, resource_type: str, resource_id: str) -> WriteResult | None:
    return await repository.delete(caller, resource_type, resource_id)


async def conditional_delete(repository: Repository, caller: Caller, resource_type: str,
                             criteria: list[tuple[str, str]]) -> WriteResult | None:
    return await repository.conditional_delete(caller, resource_type, criteria)
