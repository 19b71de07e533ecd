"""What a resource looks like when it leaves the server, whichever interaction found it.

`outgoing` is the one place the resource-read hook is called (fhir_server.storage.hooks): reads,
vreads, search matches and includes, history entries, bundle entries and write responses all
pass here. A Binary gets its data back here, and `_summary`/`_elements` are applied here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fhir_server.audit import trace
from fhir_server.errors import not_found
from fhir_server.security.callers import Caller
from fhir_server.shaping import shape
from fhir_server.storage.documents import Stored
from fhir_server.storage.repository import Repository


async def outgoing(repository: Repository, caller: Caller, stored: Stored, *, summary: str | None = None,
                   elements: Sequence[str] = (), with_data: bool = True) -> dict[str, Any] | None:
    """The resource as `caller` may receive it, or None when the read hook withholds it.

    `with_data` False leaves a Binary's bytes out (a raw Binary response sends them itself).
    """
    if stored.resource is None:
        return None
    resource = stored.resource
    if stored.resource_type == "Binary" and with_data:
        resource = await repository.with_binary_data(stored)
    shown = repository.hooks.shown(caller, resource)
    if shown is None:
        return None
    trace.returned(stored.resource_type, stored.id, stored.patient)
    return shape(shown, summary, list(elements)) if summary or elements else shown


async def required(repository: Repository, caller: Caller, stored: Stored, **options: Any) -> dict[str, Any]:
    """`outgoing` for a read by id: a withheld resource answers 404 like one that never existed."""
    resource = await outgoing(repository, caller, stored, **options)
    if resource is None:
        raise not_found(stored.resource_type, stored.id)
    return resource
