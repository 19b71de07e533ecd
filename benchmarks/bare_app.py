"""The bare-endpoint limit: the server's ASGI stack (FastAPI under uvicorn) answering with the stored
document read straight from the same store, with no FHIR logic in between, except the audit record
every read must leave: like the server, each answer waits for its AuditEvent, written by the same
group commit (../shared/DECISIONS.md, "Audit and outbox": the bare route appends one record per
read too), into a database of its own beside the server's.

Run as `python -m benchmarks.bare_app PORT STORE_URL DATABASE`.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI
from pymongo import AsyncMongoClient
from pymongo.write_concern import WriteConcern
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.audit.events import Interaction, build
from fhir_server.audit.store import AuditStore
from fhir_server.audit.trace import Trace
from fhir_server.audit.writer import AuditWriter
from fhir_server.config import Settings
from fhir_server.security.callers import PLATFORM
from fhir_server.storage.database import capabilities_for
from fhir_server.timefmt import now_instant

FHIR_JSON = "application/fhir+json"
PAGE = 20


def create_app(store_url: str, database: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(store_url, tz_aware=True)
        app.state.db = client[database]
        hello, build_info = await client.admin.command("hello"), await client.admin.command("buildInfo")
        audit = client.get_database(f"{database}_bare_audit", write_concern=WriteConcern(w=1, j=True))
        store = AuditStore(client, audit, embedded=capabilities_for(hello, build_info).embedded, gate=None)
        await store.ensure()
        settings = Settings()
        app.state.audit = AuditWriter(store, settings.audit_group_ms / 1000, settings.audit_group_max)
        try:
            yield
        finally:
            await app.state.audit.close()
            await client.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    async def audited(request: Request, started: str, what: str, docs: list[dict[str, Any]]) -> None:
        trace = Trace()
        for doc in docs:
            trace.returned[f"DocumentReference/{doc['_id']}"] = doc.get("pat")
            trace.patient(doc.get("pat"))
        await request.app.state.audit.write(build(Interaction(what), PLATFORM, 200, trace, started, True))

    @app.get("/DocumentReference/{resource_id}")
    async def read(request: Request, resource_id: str) -> Response:
        started = now_instant()
        doc = await request.app.state.db["DocumentReference"].find_one({"_id": resource_id}, {"res": 1, "pat": 1})
        if doc is None:
            return Response(status_code=404)
        await audited(request, started, "read", [doc])
        return Response(orjson.dumps(doc["res"]), media_type=FHIR_JSON)

    @app.get("/DocumentReference")
    async def search(request: Request) -> Response:
        # The same filter and order as the server's patient+type search (see scenarios/search.py).
        query = {"ix.patient": f"Patient/{request.query_params['patient']}",
                 "ix.type": request.query_params["type"], "del": False}
        started = now_instant()
        found = request.app.state.db["DocumentReference"].find(query, {"res": 1, "pat": 1}).sort("sk.date", -1).limit(PAGE)
        docs = await found.to_list(length=PAGE)
        await audited(request, started, "search-type", docs)
        bundle = {"resourceType": "Bundle", "type": "searchset",
                  "entry": [{"resource": d["res"], "search": {"mode": "match"}} for d in docs]}
        return Response(orjson.dumps(bundle), media_type=FHIR_JSON)

    return app


if __name__ == "__main__":
    port, url, name = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    uvicorn.run(create_app(url, name), host="127.0.0.1", port=port, log_level="warning", access_log=False)
