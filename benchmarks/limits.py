"""The bare endpoint (`benchmarks.bare_app`) as a process of its own, like the server it is compared to."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import psutil

from tests.server_process import free_port


class BareEndpoint:
    """`benchmarks.bare_app` in its own process, like the server."""

    def __init__(self, store_url: str, database: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen([sys.executable, "-m", "benchmarks.bare_app", str(self.port), store_url, database])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait(self, timeout: float = 30.0) -> BareEndpoint:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the bare endpoint exited with code {self.process.returncode}")
            try:
                httpx.get(f"{self.url}/DocumentReference/none", timeout=1.0)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the bare endpoint did not start")

    def psutil_process(self) -> psutil.Process:
        return psutil.Process(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
