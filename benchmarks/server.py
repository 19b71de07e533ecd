"""The server under test (`fhir-server serve`) as a child process, and the store it talks to."""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

from tests.server_process import ServerProcess

EMBEDDED_STORE_MODULE = "nx_27017.nx_27017"


@dataclass
class Server(ServerProcess):
    """The tests' server process, plus what the harness measures: its processes and its store."""

    @property
    def external_store(self) -> str | None:
        return os.environ.get("MONGODB_URL") or None

    @property
    def database(self) -> str:
        return os.environ.get("FHIR_DATABASE", "fhir")

    def front(self) -> psutil.Process:
        assert self.process is not None, "server not started"
        return psutil.Process(self.process.pid)

    def store(self) -> psutil.Process | None:
        """The embedded store child process; None when the server uses MONGODB_URL."""
        for child in self.front().children(recursive=True):
            if EMBEDDED_STORE_MODULE in " ".join(child.cmdline()):
                return child
        return None

    def store_url(self) -> str:
        if self.external_store:
            return self.external_store
        store = self.store()
        if store is None:
            raise RuntimeError("no embedded store child process found")
        command = store.cmdline()
        port = command[command.index("--port") + 1]
        return f"mongodb://127.0.0.1:{port}/?directConnection=true&journal=true"
