"""`fhir-server serve --workers N`: N server processes forked from one parent that holds the sockets.

The parent binds the HTTP (and MLLP) listeners, starts the embedded store and builds the app,
then forks: every worker inherits the listening sockets and accepts on them (the kernel hands
each connection to one of them), and runs the app's lifespan (its own store connections, caches
and background loops) for itself. What must be one across processes lives in the store: the
writer gate's file locks, the leases of the background workers, claims (storage/claims.py).

The parent only supervises: "ready" once every worker said it serves; a worker that dies is
forked again (logged, at most once a second per slot); SIGTERM or SIGINT stops every worker
gracefully (SIGKILL after `STOP_GRACE_SECONDS`), then the caller stops the store.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("fhir_server")

# How long stopping workers get to finish their requests and lifespan before they are killed.
STOP_GRACE_SECONDS = 30.0
# A slot whose worker died is forked again no sooner than this after its previous start, so a
# worker that cannot start does not spin.
RESTART_INTERVAL_SECONDS = 1.0
# What a worker whose start-up failed exits with (uvicorn's own code for it).
STARTUP_FAILURE = 3

# Runs one worker's server until it stops; calls its argument once the worker serves; returns
# the process's exit code.
ServeOne = Callable[[Callable[[], None]], int]


def _die_with_parent() -> None:
    # Linux: a parent killed outright (kill -9) takes its workers with it, as it takes its store.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class _Slot:
    index: int
    pid: int = 0
    started_at: float = 0.0
    serving: bool = False
    exit_status: int = 0


@dataclass
class Workers:
    count: int
    serve_one: ServeOne
    slots: list[_Slot] = field(default_factory=list)
    # The parent's own descriptors (readiness and signal wake-up pipes' read ends, the wake-up
    # pipe's write end), which a worker closes.
    _parent_only: tuple[int, ...] = ()

    def run(self, on_ready: Callable[[], None]) -> int:
        """Fork the workers and supervise them until a stop signal (0) or a failed start-up (3)."""
        ready_read, ready_write = os.pipe()
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        stopping: list[int] = []
        previous = {sig: signal.signal(sig, lambda signum, _frame: stopping.append(signum))
                    for sig in (signal.SIGTERM, signal.SIGINT)}
        # SIGCHLD only needs to wake the loop up: the wake-up fd gets a byte for every signal handled.
        previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
        previous_wakeup = signal.set_wakeup_fd(wake_write)
        self.slots = [_Slot(i) for i in range(self.count)]
        self._parent_only = (ready_read, wake_read, wake_write)
        try:
            for slot in self.slots:
                self._fork(slot, ready_write)
            return self._supervise(ready_read, ready_write, wake_read, stopping, on_ready)
        finally:
            self._stop()
            signal.set_wakeup_fd(previous_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for fd in (ready_read, ready_write, wake_read, wake_write):
                os.close(fd)

    def _fork(self, slot: _Slot, ready_write: int) -> None:
        slot.started_at = time.monotonic()
        slot.serving = False
        pid = os.fork()
        if pid:
            slot.pid = pid
            return
        # The worker: nothing of the parent's supervision, and never back into the caller's stack
        # (whose `finally` stops the store).
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            for fd in self._parent_only:
                os.close(fd)
            if sys.platform == "linux":
                _die_with_parent()
            code = self.serve_one(lambda: os.write(ready_write, bytes([slot.index])))
        except BaseException:  # noqa: BLE001 - whatever happens, this process must not return
            log.exception("worker %d failed", slot.index + 1)
        finally:
            logging.shutdown()
            os._exit(code)

    def _supervise(self, ready_read: int, ready_write: int, wake_read: int, stopping: list[int],
                   on_ready: Callable[[], None]) -> int:
        announced = False
        while not stopping:
            readable, _, _ = select.select([ready_read, wake_read], [], [], RESTART_INTERVAL_SECONDS)
            if wake_read in readable:
                os.read(wake_read, 4096)
            if ready_read in readable:
                for index in os.read(ready_read, 4096):
                    self.slots[index].serving = True
                    if announced:
                        log.warning("worker %d (PID %d) serves again", index + 1, self.slots[index].pid)
            if not announced and all(slot.serving for slot in self.slots):
                announced = True
                on_ready()
            for slot in self._reap():
                if not announced:
                    # A worker that cannot start says why in the log; the others would fail alike.
                    log.error("worker %d (PID %d) exited during start-up (%s)", slot.index + 1, slot.pid,
                              _status(slot.exit_status))
                    return STARTUP_FAILURE
                log.warning("worker %d (PID %d) exited (%s); starting a new one", slot.index + 1, slot.pid,
                            _status(slot.exit_status))
                slot.pid = 0
            for slot in self.slots:
                if slot.pid == 0 and time.monotonic() - slot.started_at >= RESTART_INTERVAL_SECONDS:
                    self._fork(slot, ready_write)
        return 0

    def _reap(self) -> list[_Slot]:
        """The slots whose worker has exited, with `exit_status` set. Only workers are waited for:
        the store is a child of this process too, and its Popen keeps its own status."""
        dead = []
        for slot in self.slots:
            if not slot.pid:
                continue
            try:
                pid, status = os.waitpid(slot.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = slot.pid, 0
            if pid:
                slot.exit_status = status
                dead.append(slot)
        return dead

    def _stop(self) -> None:
        """SIGTERM to every worker, SIGKILL to those still running after the grace period."""
        live = {slot.pid for slot in self.slots if slot.pid}
        for pid in live:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while live and time.monotonic() < deadline:
            for pid in list(live):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done = pid
                if done:
                    live.discard(pid)
            time.sleep(0.05)
        for pid in live:
            log.warning("worker PID %d did not stop within %.0fs; killed", pid, STOP_GRACE_SECONDS)
            _signal(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        for slot in self.slots:
            slot.pid = 0


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
