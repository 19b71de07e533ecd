"""Start and stop the embedded MongoDB-wire-compatible store (nx-27017 over SQLite).

It runs as a child process on a free loopback port, with its SQLite file under the data dir,
so the server uses exactly the same driver and queries as against a real MongoDB.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError


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


class EmbeddedStore:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        # journal=true maps to SQLite synchronous=FULL: an acknowledged write survives a power cut.
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true&journal=true"

    def start(self, timeout: float = 30.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        log = self.data_dir / "embedded-store.log"
        command = [
            # nx-27017's console script, run with this interpreter (the package has no __main__).
            sys.executable, "-c", "import sys; from nx_27017.nx_27017 import main; sys.exit(main())",
            # One SQLite file per logical database: with a single --db file, every database name
            # shares the same tables (dropping one empties all), so two stores could not be told apart.
            "--data-dir", str(self.data_dir / "store"),
            "--host", "127.0.0.1", "--port", str(self.port),
            "--log-file", str(log), "--pid-file", str(self.data_dir / "embedded-store.pid"),
        ]
        with open(log, "ab") as out:
            self._process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise StoreUnavailable(f"embedded store exited at start (code {self._process.returncode}); see {log}")
            if self._ping():
                return self.url
            time.sleep(0.05)
        self.stop()
        raise StoreUnavailable(f"embedded store did not answer within {timeout:.0f}s; see {log}")

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
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
