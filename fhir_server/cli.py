"""`fhir-server serve`: the server, with the embedded store unless MONGODB_URL is set."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import uvicorn
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from fhir_server import facilities
from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.storage.embedded import EmbeddedStore, StoreUnavailable


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fhir-server", description="FHIR R4 server for a national health record")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--data-dir", type=Path, default=Path("./data"), help="where the embedded store keeps its file")
    serve.add_argument("--mllp-port", type=int, default=None, help="also accept HL7 v2 over MLLP on this port")
    serve.add_argument("--log-level", default="warning")
    facilities.add_arguments(commands)
    return parser


def _check_external(url: str) -> None:
    client: MongoClient[dict] = MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        raise StoreUnavailable(f"cannot reach MongoDB at MONGODB_URL: {exc.__class__.__name__}") from exc
    finally:
        client.close()


def serve(args: argparse.Namespace) -> int:
    settings = Settings(host=args.host, port=args.port, data_dir=args.data_dir, mllp_port=args.mllp_port)
    store: EmbeddedStore | None = None
    try:
        if settings.mongodb_url:
            _check_external(settings.mongodb_url)
            url = settings.mongodb_url
        else:
            store = EmbeddedStore(settings.data_dir.resolve())
            url = store.start()
        app = create_app(settings, url, embedded=store is not None)
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level, access_log=False)
        return 0
    except StoreUnavailable as exc:
        print(f"fhir-server: {exc}", file=sys.stderr)
        return 1
    finally:
        if store is not None:
            store.stop()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    if args.command == "facilities":
        return facilities.run(args)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
