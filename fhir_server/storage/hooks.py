"""The named hooks of the access path. Each is called from exactly one place (docs/ARCHITECTURE.md):

- search filter (`Hooks.condition`): conditions ANDed into every store query the repository runs
  for a caller: searches and their counts, pages, `_include`, `_revinclude`, chains, `_has`,
  conditional matching, reads, vreads and history. Called from `repository.Reader.scoped`.
  Conditions may name only keys both stores carry: `pat`, `del`, `ts` and `res.*`.
- record open (`Hooks.open`): once per interaction, before its first store query, with the records
  (patient ids) the interaction names: a read, the record of the resource; a search, the patients its
  parameters or compartment name; None when it names none. It makes the record-level decision (may
  raise 403) and returns a filter its queries then carry like the search filter's conditions.
  Called from `repository.Reader.open`.
- resource read (`Hooks.shown`): every resource leaving the server, matches, includes and history
  entries alike, may be redacted (or withheld: None). Called from `interactions.output.outgoing`.
  It runs after paging, so it must not be used to hide: hiding is the search filter's job.
- before write (`Hooks.check_write`): every resource a caller writes, before any store work;
  validation is registered here. Called from `Repository.prepare`.
- record keys (`Hooks.keys`): the scalar keys each version carries next to `pat` (who deposited it,
  its visibility), which the search filter's conditions compare; a key may need a lookup (who a
  reference names), made with the server's own reader in the write's session, so reads never
  look anything up. Called from `Repository._write` (and `Repository._stage`, see record write).
- record write (`Hooks.check_record`): every version a caller writes or deletes, with the patient
  whose record it goes to (`pat`), before it is stored, inside its transaction. Called from
  `Repository._write`, the one place `pat` is computed, and from `Repository._stage`, the same
  steps for many resources at once (`write_many`, the NDJSON import). Besides refusing, it may
  set on the version what the server decides, not the caller (the record lifecycle's dates,
  `record.lifecycle.check_transition`); the version's search index is already computed then.
- after commit (`Hooks.committed`): every outbox event, in commit order per patient, after its
  transaction committed, at least once. Called from `events.dispatcher.Dispatcher`.
- after commit, by batch (`Hooks.committed_batch`): the same events, those of one dispatch round
  at a time (in commit order), for a hook whose store look-ups one round can share (subscription
  matching: one look-up per round, not two per event). Called from `events.dispatcher.Dispatcher`,
  after the per-event hooks of the same events; raising leaves the whole round's events pending.

`FHIR_HOOKS` names modules (comma-separated) whose `register(hooks)` adds hooks at start-up:
that is how tests, and later the access rules, audit and subscriptions, plug in.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fhir_server.security.callers import Caller

if TYPE_CHECKING:
    from fhir_server.storage.documents import Stored
    from fhir_server.storage.repository import Reader, Session

# (caller, resource type or None for system history) -> a store condition, or None for no limit.
SearchFilter = Callable[[Caller, str | None], dict[str, Any] | None]
# (resource type or None) -> a store condition for one query of an opened interaction, or None.
ScopeFilter = Callable[[str | None], dict[str, Any] | None]
# (caller, reader, patients named or None) -> the filter of that interaction's queries, or None.
RecordOpen = Callable[[Caller, "Reader", list[str] | None], Awaitable[ScopeFilter | None]]
# (caller, resource type, resource or None for a deletion, current version, the version its
# securityContext names, the server's own reader in the write's session) -> keys stored with the version.
RecordKeys = Callable[[Caller, str, dict[str, Any] | None, "Stored | None", "Stored | None", "Reader"],
                      Awaitable[dict[str, Any]]]
# (caller, resource) -> the resource as it may leave, or None to withhold it.
ResourceRead = Callable[[Caller, dict[str, Any]], dict[str, Any] | None]
# (caller, resource) -> None; raises FhirError to refuse the write.
BeforeWrite = Callable[[Caller, dict[str, Any]], None]
# The facts of one version about to be written (or deleted) into a record.
@dataclass(frozen=True)
class RecordWriteCheck:
    caller: Caller
    resource_type: str
    resource_id: str
    resource: dict[str, Any] | None
    current: Stored | None
    patient: str | None
    session: Session
    reader: Reader


# (the write) -> None; raises FhirError to refuse the write.
RecordWrite = Callable[[RecordWriteCheck], Awaitable[None]]
# (outbox event) -> None; raising leaves the event (and those after it) for the next attempt.
AfterCommit = Callable[[dict[str, Any]], Awaitable[None]]
# (the outbox events of one dispatch round, in commit order) -> None; raising leaves them all.
AfterCommitBatch = Callable[[list[dict[str, Any]]], Awaitable[None]]


@dataclass
class Hooks:
    search_filters: list[SearchFilter] = field(default_factory=list)
    record_opens: list[RecordOpen] = field(default_factory=list)
    record_keys: list[RecordKeys] = field(default_factory=list)
    resource_reads: list[ResourceRead] = field(default_factory=list)
    before_writes: list[BeforeWrite] = field(default_factory=list)
    record_writes: list[RecordWrite] = field(default_factory=list)
    after_commits: list[AfterCommit] = field(default_factory=list)
    after_commit_batches: list[AfterCommitBatch] = field(default_factory=list)

    @property
    def consumes_events(self) -> bool:
        """Whether any after-commit hook is registered: writes queue outbox events only then."""
        return bool(self.after_commits or self.after_commit_batches)

    def condition(self, caller: Caller, resource_type: str | None) -> list[dict[str, Any]]:
        """The search-filter conditions for one query of `caller`."""
        found = (hook(caller, resource_type) for hook in self.search_filters)
        return [c for c in found if c]

    def shown(self, caller: Caller, resource: dict[str, Any]) -> dict[str, Any] | None:
        shown: dict[str, Any] | None = resource
        for hook in self.resource_reads:
            if shown is None:
                break
            shown = hook(caller, shown)
        return shown

    def check_write(self, caller: Caller, resource: dict[str, Any]) -> None:
        for hook in self.before_writes:
            hook(caller, resource)

    async def open(self, caller: Caller, reader: Reader, patients: list[str] | None) -> list[ScopeFilter]:
        found = [await hook(caller, reader, patients) for hook in self.record_opens]
        return [f for f in found if f is not None]

    async def keys(self, caller: Caller, resource_type: str, resource: dict[str, Any] | None, current: Stored | None,
                   context: Stored | None, reader: Reader) -> dict[str, Any]:
        keys: dict[str, Any] = {}
        for hook in self.record_keys:
            keys.update(await hook(caller, resource_type, resource, current, context, reader))
        return keys

    async def check_record(self, check: RecordWriteCheck) -> None:
        for hook in self.record_writes:
            await hook(check)

    async def committed(self, event: dict[str, Any]) -> None:
        for hook in self.after_commits:
            await hook(event)

    async def committed_batch(self, events: list[dict[str, Any]]) -> None:
        for hook in self.after_commit_batches:
            await hook(events)


class HooksUnavailable(Exception):
    """A module FHIR_HOOKS names cannot be loaded; the message is one line for the operator."""


def load_modules(hooks: Hooks, names: str | None) -> None:
    """Let each module named in `names` (FHIR_HOOKS) register its hooks."""
    for name in (n.strip() for n in (names or "").split(",")):
        if not name:
            continue
        try:
            register = importlib.import_module(name).register
        except (ImportError, AttributeError) as exc:
            raise HooksUnavailable(f"FHIR_HOOKS names '{name}', which cannot be loaded: {exc}") from None
        register(hooks)
