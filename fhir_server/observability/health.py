"""`GET /health/live` and `GET /health/ready`, for a load balancer or an orchestrator: no
authentication, no data, not audited (like the CapabilityStatement), answered in the health check
format of draft-inadarei-api-health-check (`application/health+json`, `status` pass or fail).

Live: the process answers HTTP. Ready: it can serve requests: its start-up has run (collections
and indexes made), the store answers a ping within a second, and the MLLP listener serves when a
port was configured. Not ready is a 503 naming each failed check.
"""

from __future__ import annotations

from typing import Any

import orjson
import pymongo
from fastapi import APIRouter
from pymongo.errors import PyMongoError
from starlette.requests import Request
from starlette.responses import Response

LIVE = "/health/live"
READY = "/health/ready"
PATHS = frozenset({LIVE, READY})
MEDIA_TYPE = "application/health+json"
PING_SECONDS = 1.0

router = APIRouter()


def _answer(checks: dict[str, str]) -> Response:
    failed = {name: reason for name, reason in checks.items() if reason != "pass"}
    body: dict[str, Any] = {"status": "fail" if failed else "pass",
                            "checks": {name: [{"status": "pass" if reason == "pass" else "fail",
                                               **({"output": reason} if reason != "pass" else {})}]
                                       for name, reason in checks.items()}}
    return Response(orjson.dumps(body), 503 if failed else 200, media_type=MEDIA_TYPE,
                    headers={"Cache-Control": "no-store"})


@router.get(LIVE, include_in_schema=False)
async def live() -> Response:
    return _answer({})


@router.get(READY, include_in_schema=False)
async def ready(request: Request) -> Response:
    state = request.app.state
    checks: dict[str, str] = {}
    repository = getattr(state, "repository", None)
    checks["startup"] = "pass" if repository is not None else "collections and indexes not made yet"
    if repository is not None:
        try:
            with pymongo.timeout(PING_SECONDS):
                await repository.database.client.admin.command("ping")
            checks["store"] = "pass"
        except PyMongoError as exc:
            checks["store"] = f"the store does not answer: {exc.__class__.__name__}"
    if state.settings.mllp_port is not None:
        server = getattr(state, "mllp_server", None)
        checks["mllp"] = "pass" if server is not None and server.is_serving() else "MLLP listener not serving"
    return _answer(checks)
