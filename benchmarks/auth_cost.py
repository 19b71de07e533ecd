"""What authentication costs per request: `python -m benchmarks.auth_cost`.

1. Microbenchmarks of the token check: a token seen before (the hot path: one dict lookup and the
   audience, expiry and disabled-client checks), a first verification (ES384 signature), and the
   middleware's whole per-request work (headers, base URL, lookup).
2. Read throughput of the real application in this process, against the embedded store, with the
   authentication middleware and with the same stack past it (the caller set directly): the
   difference is what authentication costs a read. In-process, without sockets, so the ratio is an
   upper bound of what a client over HTTP would see.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from fhir_server.api.authentication import Authentication
from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.security.callers import PLATFORM
from fhir_server.security.minting import mint
from fhir_server.security.tokens import default_scopes
from fhir_server.storage.embedded import EmbeddedStore

BASE = "http://testserver/fhir"


def per_call_us(function: Any, count: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(count):
            function()
        best = min(best, (time.perf_counter() - started) / count)
    return best * 1e6


async def reads_per_second(app: Any, path: str, headers: dict[str, str], count: int) -> float:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers) as client:
        for _ in range(50):
            assert (await client.get(path)).status_code == 200
        started = time.perf_counter()
        for _ in range(count):
            await client.get(path)
        return count / (time.perf_counter() - started)


def inner_of(app: Any) -> Any:
    """The application stack right past the authentication middleware."""
    layer = app.build_middleware_stack()
    while not isinstance(layer, Authentication):
        layer = layer.app
    return layer.app


async def run(reads: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fhir-auth-cost-") as scratch:
        data_dir = Path(scratch) / "data"
        store = EmbeddedStore(data_dir)
        url = store.start()
        try:
            settings = Settings(data_dir=data_dir)
            app = create_app(settings, url)
            async with app.router.lifespan_context(app):
                signer = app.state.keys.signer
                verifier = app.state.tokens
                token = mint(signer, kind="platform", audience=BASE, ttl=3600, scope=default_scopes("platform"),
                             subject="bench", identity={})
                await verifier.verify(token, BASE)
                cached_us = per_call_us(lambda: verifier.cached(token, BASE), 100_000)
                fresh = [mint(signer, kind="platform", audience=BASE, ttl=3600, scope="system/*.cruds", subject=str(i),
                              identity={}) for i in range(300)]
                started = time.perf_counter()
                for one in fresh:
                    await verifier.verify(one, BASE)
                first_us = (time.perf_counter() - started) / len(fresh) * 1e6

                middleware = Authentication(inner_of(app))
                scope = {"type": "http", "method": "GET", "path": "/fhir/Patient/x", "root_path": "", "scheme": "http",
                         "query_string": b"", "server": ("testserver", 80), "app": app,
                         "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())]}
                started = time.perf_counter()
                for _ in range(20_000):
                    await middleware._caller(dict(scope))
                middleware_us = (time.perf_counter() - started) / 20_000 * 1e6

                headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                                             headers=headers) as client:
                    created = await client.post("/fhir/Patient", json={"resourceType": "Patient", "gender": "female"},
                                                headers={"Content-Type": "application/fhir+json"})
                    path = f"/fhir/Patient/{created.json()['id']}"
                inner = inner_of(app)

                async def without_authentication(scope: dict, receive: Any, send: Any) -> None:
                    scope["app"] = app
                    if scope["type"] == "http":
                        scope.setdefault("state", {})["caller"] = PLATFORM
                    await inner(scope, receive, send)

                with_auth, without = [], []
                for _ in range(rounds):
                    without.append(await reads_per_second(without_authentication, path, {"Accept": "application/fhir+json"}, reads))
                    with_auth.append(await reads_per_second(app, path, headers, reads))
        finally:
            store.stop()
    best_with, best_without = max(with_auth), max(without)
    return {
        "cached_token_check_us": round(cached_us, 3),
        "first_verification_us": round(first_us, 1),
        "middleware_per_request_us": round(middleware_us, 2),
        "reads_per_second_with_authentication": round(best_with),
        "reads_per_second_without_authentication": round(best_without),
        "read_throughput_cost_percent": round((1 - best_with / best_without) * 100, 2),
        "rounds": {"with": [round(r) for r in with_auth], "without": [round(r) for r in without],
                   "median_cost_percent": round((1 - statistics.median(with_auth) / statistics.median(without)) * 100, 2)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.auth_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=2000, help="reads per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args.reads, args.rounds)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
