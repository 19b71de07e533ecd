"""Start and stop the embedded MongoDB-wire-compatible store (nx-27017 over SQLite).

It runs as a child process on a free loopback port, with its SQLite files under the data dir,
so the server uses exactly the same driver and queries as against a real MongoDB.

The server that starts the store owns the data dir: it holds an exclusive lock on
`server.lock` for its whole life. The kernel drops that lock when the process dies, however it
dies, so a lock that can be taken means no server runs on the data dir, and whatever the store's
pid file says is left over from a crash.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

log = logging.getLogger(__name__)
# How long a previous store of this data dir, left without its server, gets to stop on SIGTERM
# (it takes well under a second) before it is killed.
ORPHAN_GRACE_SECONDS = 3.0


class StoreUnavailable(RuntimeError):
    """The store could not be started or reached; the message is one line for the operator."""


def _die_with_parent() -> None:
    # Linux: if the server is killed outright, its store goes too instead of holding the file.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def store_dir(data_dir: Path) -> Path:
    """Where the store keeps its SQLite files (one per logical database)."""
    return data_dir.resolve() / "store"


def _process_state(pid: int) -> str | None:
    """The state letter of /proc/<pid>/stat (R, S, D, Z...), None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def serves_data_dir(pid: int, data_dir: Path) -> bool:
    """Whether `pid` is a live (not zombie) nx-27017 process keeping its files under `data_dir`.

    Read from /proc: a pid file or a store's own answer only names a number, which may be a
    zombie or, after a reboot or a long time, an unrelated process that reused it.
    """
    if _process_state(pid) in (None, "Z", "X"):
        return False
    try:
        words = [w.decode(errors="replace") for w in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
    except OSError:
        return False
    if not any("nx_27017" in word or word.endswith("nx-27017") for word in words):
        return False
    for flag, value in zip(words, words[1:]):
        if flag == "--data-dir":
            return Path(value).resolve() == store_dir(data_dir)
    return False


def _why_stale(pid: int) -> str:
    state = _process_state(pid)
    return "gone" if state is None else "a zombie" if state in ("Z", "X") else "another program now"


def _last_error(log_file: Path, offset: int) -> str | None:
    """The store's last ERROR line written since `offset`, without its timestamp and logger."""
    try:
        with open(log_file, "rb") as f:
            f.seek(offset)
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    errors = [line.rsplit(" - ", 1)[-1] for line in lines if " - ERROR - " in line]
    return errors[-1] if errors else None


class EmbeddedStore:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._claim: int | None = None

    @property
    def url(self) -> str:
        # journal=true maps to SQLite synchronous=FULL: an acknowledged write survives a power cut.
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true&journal=true"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "embedded-store.pid"

    @property
    def url_file(self) -> Path:
        """Where the running store's URL is written, for commands that write while the server runs."""
        return self.data_dir / "embedded-store.url"

    def claim(self) -> None:
        """Take the data dir for this process, or say which server has it."""
        if self._claim is not None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / "server.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            named = f" (PID {owner})" if owner.isdigit() else ""
            raise StoreUnavailable(f"the data dir {self.data_dir} is in use by another server{named}") from None
        # The pid is for the message above only; the lock is what says the data dir is taken.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._claim = fd

    def release(self) -> None:
        fd, self._claim = self._claim, None
        if fd is not None:
            os.close(fd)

    def _clear_leftovers(self) -> None:
        """Remove the pid file a crashed server's store left, after its process is gone.

        nx-27017 refuses to start while its pid file names a process that exists, and a store
        killed with its server stays a zombie until whoever adopts orphans reaps it (about 1.5 s).
        """
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            self.pid_file.unlink(missing_ok=True)
            return
        if serves_data_dir(pid, self.data_dir):
            log.warning("the previous embedded store of this data dir (PID %d) outlived its server; stopping it", pid)
            self._stop_orphan(pid)
        else:
            log.warning("removing the stale embedded store pid file (PID %d is %s)", pid, _why_stale(pid))
        self.pid_file.unlink(missing_ok=True)

    def _stop_orphan(self, pid: int) -> None:
        # It got SIGTERM when its server died (PR_SET_PDEATHSIG) and is most likely exiting.
        for sig, grace in ((signal.SIGTERM, ORPHAN_GRACE_SECONDS), (signal.SIGKILL, 2.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if not serves_data_dir(pid, self.data_dir):
                    return
                time.sleep(0.05)
        raise StoreUnavailable(f"the previous embedded store of {self.data_dir} (PID {pid}) does not stop")

    def start(self, timeout: float = 30.0) -> str:
        self.claim()
        self._clear_leftovers()
        self.port = _free_port()
        log_file = self.data_dir / "embedded-store.log"
        command = [
            # nx-27017's console script, run with this interpreter (the package has no __main__).
            sys.executable, "-c", "import sys; from nx_27017.nx_27017 import main; sys.exit(main())",
            # One SQLite file per logical database: with a single --db file, every database name
            # shares the same tables (dropping one empties all), so two stores could not be told apart.
            "--data-dir", str(store_dir(self.data_dir)),
            "--host", "127.0.0.1", "--port", str(self.port),
            "--log-file", str(log_file), "--pid-file", str(self.pid_file),
        ]
        with open(log_file, "ab") as out:
            offset = out.tell()
            self._process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                reason = _last_error(log_file, offset) or f"code {self._process.returncode}"
                raise StoreUnavailable(f"embedded store exited at start ({reason}); see {log_file}")
            if self._ping():
                self.url_file.write_text(self.url + "\n", encoding="ascii")
                return self.url
            time.sleep(0.05)
        self.stop()
        raise StoreUnavailable(f"embedded store did not answer within {timeout:.0f}s; see {log_file}")

    def _ping(self) -> bool:
        client: MongoClient[dict] = MongoClient(self.url, serverSelectionTimeoutMS=200, connectTimeoutMS=200)
        try:
            client.admin.command("ping")
            return True
        except PyMongoError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the store and give the data dir up."""
        process, self._process = self._process, None
        try:
            if process is None or process.poll() is not None:
                return
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        finally:
            self.release()


@contextmanager
def store_beside_server(data_dir: Path, mongodb_url: str | None) -> Iterator[str]:
    """The URL a command that writes the record uses: MONGODB_URL; else the store of the server
    running on `data_dir` (whose writer gate the command then shares through the data dir's file
    locks, DECISIONS "Processes and the embedded store"); else a store started for the command
    and stopped after it."""
    if mongodb_url:
        yield mongodb_url
        return
    running = EmbeddedStore(data_dir)
    try:
        running.claim()
    except StoreUnavailable:
        if not running.url_file.exists():
            raise
        yield running.url_file.read_text(encoding="ascii").strip()
        return
    running.release()
    store = EmbeddedStore(data_dir)
    try:
        yield store.start()
    finally:
        store.stop()
