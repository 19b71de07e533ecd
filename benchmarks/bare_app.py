"""The bare-endpoint limit: the server's ASGI stack (FastAPI under uvicorn) answering with the stored
document read straight from the same store, with no FHIR logic in between.

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
from starlette.requests import Request
from starlette.responses import Response

FHIR_JSON = "application/fhir+json"
PAGE = 20


def create_app(store_url: str, database: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(store_url, tz_aware=True)
        app.state.db = client[database]
        try:
            yield
        finally:
            await client.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/DocumentReference/{resource_id}")
    async def read(request: Request, resource_id: str) -> Response:
        doc = await request.app.state.db["DocumentReference"].find_one({"_id": resource_id}, {"res": 1})
        if doc is None:
            return Response(status_code=404)
        return Response(orjson.dumps(doc["res"]), media_type=FHIR_JSON)

    @app.get("/DocumentReference")
    async def search(request: Request) -> Response:
        # The same filter and order as the server's patient+type search (see scenarios/search.py).
        query = {"ix.patient": f"Patient/{request.query_params['patient']}",
                 "ix.type": request.query_params["type"], "del": False}
        found = request.app.state.db["DocumentReference"].find(query, {"res": 1}).sort("sk.date", -1).limit(PAGE)
        docs = await found.to_list(length=PAGE)
        bundle = {"resourceType": "Bundle", "type": "searchset",
                  "entry": [{"resource": d["res"], "search": {"mode": "match"}} for d in docs]}
        return Response(orjson.dumps(bundle), media_type=FHIR_JSON)

    return app


if __name__ == "__main__":
    port, url, name = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    uvicorn.run(create_app(url, name), host="127.0.0.1", port=port, log_level="warning", access_log=False)
