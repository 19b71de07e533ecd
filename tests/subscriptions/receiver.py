"""A rest-hook endpoint of the test's own: a threaded HTTP server on a loopback port that records
every request it takes, and answers what the test tells it to (2xx, or an error while "down")."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Notification:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None

    @property
    def event(self) -> str:
        return self.headers["x-event-id"]


@dataclass
class Receiver:
    notifications: list[Notification] = field(default_factory=list)
    # What the endpoint answers; 503 while the test says it is down.
    status: int = 200
    # Seconds each answer takes once the notification is recorded (a slow endpoint).
    delay: float = 0.0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _take(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status = receiver.status
                if 200 <= status < 300:
                    with receiver._lock:
                        receiver.notifications.append(Notification(
                            self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                            json.loads(raw) if raw else None))
                time.sleep(receiver.delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = _take

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def received(self) -> list[Notification]:
        with self._lock:
            return list(self.notifications)

    def wait_for(self, done: Callable[[list[Notification]], bool], timeout: float = 30.0) -> list[Notification]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received()
            if done(got):
                return got
            time.sleep(0.05)
        raise AssertionError(f"not received within {timeout}s: {self.received()}")


def subscription(criteria: str, endpoint: str | None = None, *, payload: str | None = None,
                 channel: str = "rest-hook", headers: list[str] | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Subscription", "status": "requested", "reason": "test",
                                "criteria": criteria, "channel": {"type": channel}}
    if endpoint is not None:
        resource["channel"]["endpoint"] = endpoint
    if payload is not None:
        resource["channel"]["payload"] = payload
    if headers:
        resource["channel"]["header"] = headers
    return resource
