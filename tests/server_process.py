"""Running the real server (`fhir-server serve`) as a child process on free loopback ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from fhir_server.security.callers import Kind
from fhir_server.security.minting import mint
from fhir_server.security.server_keys import KEYS_DIR, file_text
from fhir_server.security.signing import SIGNING_KEY, ServerSigner
from fhir_server.security.tokens import default_scopes

# Test servers take HL7 v2 from any sender unless a test says otherwise.
TEST_ENV = {"FHIR_MLLP_SENDERS": "*"}


def server_token(data_dir: Path, base_url: str, kind: Kind = "platform", ttl: int = 6 * 3600, scope: str | None = None,
                 **identity: str | None) -> str:
    """A token signed with the key of the server of `data_dir`, as `fhir-server token` makes it."""
    pem = file_text(data_dir / KEYS_DIR, f"{SIGNING_KEY}.pem", lambda: "")
    return mint(ServerSigner(pem), kind=kind, audience=base_url, ttl=ttl, scope=scope or default_scopes(kind),
                subject=kind, identity=identity)


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


@dataclass
class ServerProcess(Authenticated):
    data_dir: Path
    port: int = field(default_factory=free_port)
    mllp_port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    # More `fhir-server serve` options (e.g. --mllp-tls-cert).
    args: list[str] = field(default_factory=list)
    # Its own process group, so a test can kill the server and its store together, as a crash would.
    own_group: bool = False
    process: subprocess.Popen[bytes] | None = None
    token: str = ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}-server.log"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        env = {**os.environ, **TEST_ENV, **self.env}
        command = [sys.executable, "-m", "fhir_server.cli", "serve", "--port", str(self.port),
                   "--data-dir", str(self.data_dir), "--mllp-port", str(self.mllp_port), *self.args]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=self.own_group)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.base_url}/metadata", timeout=1.0).status_code == 200:
                    self.token = server_token(self.data_dir, self.base_url)
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer in {timeout}s: {self.log_path.read_text()[-3000:]}")

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


@dataclass
class RemoteServer(Authenticated):
    """A server someone else runs (the conformance suite's target), with the token it was given."""

    base_url: str
    token: str = field(default_factory=lambda: os.environ.get("FHIR_SERVER_TOKEN", ""))

    @property
    def root_url(self) -> str:
        return self.base_url.rsplit("/fhir", 1)[0] if "/fhir" in self.base_url else self.base_url
