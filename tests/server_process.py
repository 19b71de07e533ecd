"""Running the real server (`fhir-server serve`) as a child process on free loopback ports, or,
when FHIR_TEST_INPROCESS=1, the same app served by uvicorn on a thread of the test process.

In-process, the server's code runs where tracing tools see it: `make mutate` (mutmut maps tests to
the functions they call and injects mutants in the test process) and line tracing without
subprocess hooks. The store is the same embedded store either way, in its own process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import uvicorn

from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.storage.embedded import EmbeddedStore
from fhir_server.transport import uvicorn_options

IN_PROCESS = os.environ.get("FHIR_TEST_INPROCESS") == "1"

from fhir_server.security.callers import Kind
from fhir_server.security.minting import mint
from fhir_server.security.server_keys import KEYS_DIR, file_generations
from fhir_server.security.signing import SIGNING_KEY, ServerSigner
from fhir_server.security.tokens import default_scopes

# Test servers take HL7 v2 from any sender unless a test says otherwise, and call rest-hook
# receivers of the test on loopback (fhir_server.outbound refuses loopback unless allowed).
# Prevention reminders (fhir_server.agenda) write for every adult Patient: only tests/agenda turn them on.
TEST_ENV = {"FHIR_MLLP_SENDERS": "*", "FHIR_OUTBOUND_ALLOW": "127.0.0.1/32,::1/128",
            # Small enough for tests/messaging to send an attachment over it.
            "FHIR_MESSAGE_ATTACHMENT_MAX_BYTES": "65536", "FHIR_PREVENTION_REMINDERS": "0"}
# `serve --workers` of the session's shared server (tests/conftest.py); `make test-all` runs the
# suites that use it again with 4.
SESSION_WORKERS = int(os.environ.get("FHIR_TEST_WORKERS") or 1)


def server_token(data_dir: Path, base_url: str, kind: Kind = "platform", ttl: int = 6 * 3600, scope: str | None = None,
                 **identity: str | None) -> str:
    """A token signed with the key of the server of `data_dir`, as `fhir-server token` makes it."""
    return mint(signing_key(data_dir), kind=kind, audience=base_url, ttl=ttl, scope=scope or default_scopes(kind),
                subject=kind, identity=identity)


def signing_key(data_dir: Path) -> ServerSigner:
    """The key the server of `data_dir` signs with now (the newest generation)."""
    return ServerSigner(file_generations(data_dir / KEYS_DIR, SIGNING_KEY)[-1].text)


class Authenticated:
    """HTTP calls with the platform's bearer token, for tests about something else than access."""

    base_url: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _with_token(self, kwargs: dict) -> dict:
        return {**kwargs, "headers": {**self.headers, **(kwargs.get("headers") or {})}}

    def request(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        return httpx.request(method, url, **self._with_token(kwargs))

    def get(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def client(self, base_url: str | None = None, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=base_url or self.base_url, **self._with_token(kwargs))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalServer(Authenticated):
    """A server of this test run, on a loopback port."""

    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class ServerProcess(LocalServer):
    data_dir: Path
    port: int = field(default_factory=free_port)
    mllp_port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    # More `fhir-server serve` options (e.g. --mllp-tls-cert).
    args: list[str] = field(default_factory=list)
    # Its own process group, so a test can kill the server and its store together, as a crash would.
    own_group: bool = False
    # `serve --workers`: server processes sharing the ports and the store.
    workers: int = 1
    process: subprocess.Popen[bytes] | None = None
    token: str = ""

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}-server.log"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        env = {**os.environ, **TEST_ENV, **self.env}
        command = [sys.executable, "-m", "fhir_server.cli", "serve", "--port", str(self.port),
                   "--data-dir", str(self.data_dir), "--mllp-port", str(self.mllp_port),
                   *(["--workers", str(self.workers)] if self.workers > 1 else []), *self.args]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=self.own_group)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log_path.read_text()[-3000:]}")
            try:
                if self.answers():
                    self.token = server_token(self.data_dir, self.base_url)
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer in {timeout}s: {self.log_path.read_text()[-3000:]}")

    def answers(self) -> bool:
        """Whether the server serves yet (a server over HTTPS checks with its certificate's CA)."""
        return httpx.get(f"{self.base_url}/metadata", timeout=1.0).status_code == 200

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ while the server starts and reads it, as a child process would see them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class InProcessServer(LocalServer):
    """What `fhir-server serve` runs (embedded store, app, MLLP listener), on a thread."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    mllp_port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    # An embedded store someone else runs (tests/store_pool.py); None starts one under data_dir.
    store_url: str | None = None
    store: EmbeddedStore | None = None
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    token: str = ""

    def start(self, timeout: float = 60.0) -> InProcessServer:
        # Until the app has started: its settings and its startup (the MLLP senders) read the environment.
        with _environment({**TEST_ENV, **self.env}):
            self._start(timeout)
        self.token = server_token(self.data_dir, self.base_url)
        return self

    def _start(self, timeout: float) -> None:
        settings = Settings(port=self.port, data_dir=self.data_dir, mllp_port=self.mllp_port)
        if settings.mongodb_url:
            url = settings.mongodb_url
        elif self.store_url:
            url = self.store_url
        else:
            self.store = EmbeddedStore(self.data_dir.resolve())
            url = self.store.start()
        # The options `serve` gives uvicorn without TLS (no proxy believed).
        config = uvicorn.Config(create_app(settings, url), host="127.0.0.1", port=self.port,
                                log_level="warning", access_log=False, **uvicorn_options(None, None, None))
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"fhir-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"in-process server did not start within {timeout}s")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(30)
        self._server = self._thread = None
        if self.store is not None:
            self.store.stop()
            self.store = None


def dedicated_server(data_dir: Path, env: dict[str, str] | None = None,
                     workers: int = 1) -> ServerProcess | InProcessServer:
    """A server of a test's own, in the same mode as the session's (FHIR_TEST_INPROCESS; in-process
    there is one worker, whatever `workers` says)."""
    if IN_PROCESS:
        return InProcessServer(data_dir, env=dict(env or {}))
    return ServerProcess(data_dir, env=dict(env or {}), workers=workers)


@contextmanager
def recording_server(root: Path) -> Iterator[tuple[ServerProcess | InProcessServer, Path]]:
    """A server of a test's own that records every store command (FHIR_COMMAND_LOG,
    fhir_server/storage/command_log.py) to `root/commands.jsonl`: the server and the log."""
    log = root / "commands.jsonl"
    server = dedicated_server(root / "data", env={"FHIR_COMMAND_LOG": str(log)}).start()
    try:
        yield server, log
    finally:
        server.stop()


def recorded_commands(log: Path, start: int = 0) -> list[dict[str, object]]:
    """The commands a recording server logged from byte `start` of its log on."""
    return [orjson.loads(line) for line in log.read_bytes()[start:].splitlines() if line.strip()]
