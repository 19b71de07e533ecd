"""Group commit: store transactions that wait for the embedded store's writer run as one (issue 18).

The embedded store takes one writer at a time (storage/gate.py), every transaction ends with a
synced SQLite commit, and each command costs its Python about a millisecond: an ingested letter was
21 commands and a commit, and a letter arriving meanwhile waited for all of them. Transactions that
arrive while the writer is busy now queue; when it is free they run one after the other in one
store transaction (a group), so the deferred writes of all of them (storage/pending.py) go out as
one command per collection and one commit makes all of them durable. Each caller is answered only
after that commit, so an acknowledgement still follows durable storage.

All or nothing stays each caller's own:
- A member whose work raises aborts the group's store transaction (nothing of the group is
  stored). The members before it ran without error: they run again as a group; the failing member
  then runs alone, so its outcome (refusal, conflict, dry run) is exactly that of a lone run; the
  members after it go on as the next group.
- When the group's end fails (its deferred writes or its commit), each member runs again alone.
Running a member's work again is what MongoDB's `with_transaction` does on a transient error:
works start from what the store says and keep nothing from an earlier attempt.

What the others may see: the embedded store shows a transaction's writes to readers before it
commits, so a group of more than one keeps readers out until its commit (as a multi-resource
transaction always did): a member run again after an abort makes new ids, and what its first run
wrote must never have been read.

Each member runs in a task with its caller's context (copied when it joined): what it reads and
writes lands in its caller's audit trace, and its commands carry its caller's label in the command
log. The group's end is labelled `GROUP_COMMIT` when it served more than one caller.

A caller cancelled before its group starts is left out; once its group has started, its work is
completed or aborted with the group, as the commit of a lone transaction already was.

On MongoDB (transactions that isolate) nothing queues: transactions run concurrently and the store
groups its journal writes itself.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fhir_server.observability import metrics
from fhir_server.storage import command_log

# The command log's label for a group's deferred writes and commit (benchmarks.round_trips counts it).
GROUP_COMMIT = "store group commit"
# The most transactions in one group: a group holds readers out until it commits, so it is kept to
# what a busy ingest queues in a few tens of milliseconds.
MOST = 16

Work = Callable[[Any], Awaitable[Any]]
# Runs works one after the other in one store transaction: (works, exclude readers) -> their
# results, or _Failed naming the first that raised (Database.run_group).
RunGroup = Callable[[list[Work], bool], Awaitable[list[Any]]]


@dataclass(eq=False)
class _Member:
    work: Work
    exclude_readers: bool
    context: contextvars.Context
    done: asyncio.Future[Any]
    withdrawn: bool = field(default=False)

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        if self.done.done():
            return
        if error is not None:
            self.done.set_exception(error)
        else:
            self.done.set_result(result)


class Failed(Exception):
    """The work at `index` of a group raised `error`; the group's store transaction was aborted."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(f"member {index} of a group commit raised {error!r}")
        self.index = index
        self.error = error


class GroupCommit:
    def __init__(self, run_group: RunGroup) -> None:
        self._run_group = run_group
        self._queue: list[_Member] = []
        self._drainer: asyncio.Task[None] | None = None

    async def run(self, work: Work, exclude_readers: bool) -> Any:
        """`work` in a store transaction of its own or shared with others queued with it."""
        loop = asyncio.get_running_loop()
        member = _Member(work, exclude_readers, contextvars.copy_context(), loop.create_future())
        self._queue.append(member)
        if self._drainer is None or self._drainer.done() or self._drainer.get_loop() is not loop:
            self._drainer = asyncio.create_task(self._drain(), name="store-group-commit")
        try:
            return await asyncio.shield(member.done)
        except asyncio.CancelledError:
            member.withdrawn = True
            if member in self._queue:
                self._queue.remove(member)
            raise

    async def close(self) -> None:
        """Stop (the store is closing): what is queued or running is answered with an error."""
        drainer, self._drainer = self._drainer, None
        if drainer is not None and not drainer.done():
            drainer.cancel()
            try:
                await drainer
            except asyncio.CancelledError:
                pass
        for member in self._queue:
            member.settle(error=RuntimeError("the store is closing"))
        self._queue.clear()

    async def _drain(self) -> None:
        group: list[_Member] = []
        try:
            while self._queue:
                group, self._queue = self._queue[:MOST], self._queue[MOST:]
                await self._run(group)
                group = []
        except BaseException as exc:
            # Cancelled (the store closes) or broken: nobody may wait for ever.
            for member in group:
                member.settle(error=RuntimeError(f"the store transaction was interrupted: {exc!r}"))
            raise

    async def _run(self, group: list[_Member]) -> None:
        while group := [m for m in group if not m.withdrawn]:
            if len(group) == 1:
                await self._alone(group[0])
                return
            try:
                results = await self._transaction(group)
            except Failed as failed:
                _count("member failed", failed.index + 1)
                before, failing, group = group[:failed.index], group[failed.index], group[failed.index + 1:]
                await self._run(before)
                await self._alone(failing)
                continue
            except Exception:
                _count("end failed", len(group))
                for member in group:
                    await self._alone(member)
                return
            for member, result in zip(group, results, strict=True):
                member.settle(result)
            return

    async def _alone(self, member: _Member) -> None:
        try:
            [result] = await self._transaction([member])
        except Failed as failed:
            member.settle(error=failed.error)
        except Exception as exc:
            member.settle(error=exc)
        else:
            member.settle(result)

    async def _transaction(self, group: list[_Member]) -> list[Any]:
        def in_context(member: _Member) -> Work:
            async def work(session: Any) -> Any:
                return await asyncio.create_task(member.work(session), context=member.context)
            return work

        exclude_readers = len(group) > 1 or any(m.exclude_readers for m in group)
        if len(group) == 1:
            # A lone transaction's end is its caller's, as it was before groups.
            return await asyncio.create_task(self._run_group([group[0].work], exclude_readers),
                                             context=group[0].context)
        observed = metrics.current()
        if observed is not None:
            observed.group_commit_size.observe(len(group))
        context = contextvars.copy_context()
        context.run(command_log.attribute, GROUP_COMMIT)
        return await asyncio.create_task(self._run_group([in_context(m) for m in group], exclude_readers),
                                         context=context)


def _count(reason: str, members: int) -> None:
    """Members run again because the group they were in was aborted."""
    found = metrics.current()
    if found is not None and members:
        found.group_commit_reruns.labels(reason).inc(members)
