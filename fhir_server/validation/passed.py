"""Resources found valid a moment ago, so that a write does not validate the same content again.

An ingest adapter checks the DocumentReference it made against the profiles it claims before
anything is stored, to refuse it in the sender's terms (fhir_server.ingest.pdsm); the transaction
then validates every resource it writes (fhir_server.validation_step), the same document among
them. A resource that passed is remembered by the digest of its content and the source of the
profiles it passed against, and the write's check of that same content is skipped. Only passes
are remembered: any change to the content, or profiles from elsewhere, and it is checked again.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import orjson

from fhir_server.validation.profile_registry import ProfileRegistry

# More than the documents a server ingests at one time (each is checked, then written, at once).
CAPACITY = 256


class Passed:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[tuple[Any, bytes], None] = OrderedDict()

    @staticmethod
    def _key(registry: ProfileRegistry, resource: dict[str, Any]) -> tuple[Any, bytes] | None:
        if registry.source is None:
            return None  # a registry made in code: nothing says another one checks alike
        try:
            content = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return None  # not JSON: the write's own check says why
        return registry.source, hashlib.sha256(content).digest()

    def remember(self, registry: ProfileRegistry, resource: dict[str, Any]) -> None:
        """`resource` has just passed `validate_resource` against `registry` with no error."""
        key = self._key(registry, resource)
        if key is None:
            return
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.capacity:
            self._keys.popitem(last=False)

    def seen(self, registry: ProfileRegistry, resource: dict[str, Any]) -> bool:
        """Whether this very content passed against profiles of `registry`'s source."""
        key = self._key(registry, resource)
        return key is not None and key in self._keys


# The server's: the adapters' pre-check and the write path of one process share it.
PASSED = Passed()
