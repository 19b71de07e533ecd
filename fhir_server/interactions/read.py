"""The read and vread interactions (FHIR R4 http.html#read, #vread), for routes and bundle entries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fhir_server.interactions.output import required
from fhir_server.security.callers import Caller
from fhir_server.storage.documents import Stored
from fhir_server.storage.repository import Repository, Session


@dataclass
class Found:
    stored: Stored
    # As it leaves the server (fhir_server.interactions.output).
    resource: dict[str, Any]


async def read(repository: Repository, caller: Caller, resource_type: str, resource_id: str, *,
               summary: str | None = None, elements: Sequence[str] = (), with_data: bool = True,
               session: Session = None) -> Found:
    stored = await repository.read(caller, resource_type, resource_id, session)
    return Found(stored, await required(repository, caller, stored, summary=summary, elements=elements,
                                        with_data=with_data))


async def vread(repository: Repository, caller: Caller, resource_type: str, resource_id: str, version: str, *,
                summary: str | None = None, elements: Sequence[str] = (), with_data: bool = True) -> Found:
    stored = await repository.vread(caller, resource_type, resource_id, version)
    return Found(stored, await required(repository, caller, stored, summary=summary, elements=elements,
                                        with_data=with_data))
