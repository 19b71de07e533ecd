"""`fhir-server serve`: the server, with the embedded store unless MONGODB_URL is set."""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import logging
import shlex
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from fhir_server import facilities
from fhir_server.app import create_app
from fhir_server.config import MAX_WORKERS, Settings, SettingInvalid, effective, load_settings, problems
from fhir_server.definitions import structure
from fhir_server.ingest.mllp import mllp_send
from fhir_server.observability import logs, metrics
from fhir_server.observability.ingest import ack_fields
from fhir_server.record import status_cli
from fhir_server.security import cli as security_cli
from fhir_server.apps import cli as apps_cli
from fhir_server.storage.database import StoreCapabilities, check_store
from fhir_server.storage.embedded import EmbeddedStore, StoreUnavailable, store_dir
from fhir_server.storage import mongo_setup, reset
from fhir_server.storage.hooks import HooksUnavailable
from fhir_server.storage.sharding import shard_plan
from fhir_server.events.mail import MailSettingsInvalid
from fhir_server.record import cli as enrol_cli
from fhir_server.transport import PLAIN_HTTP, TlsSettingsInvalid, check_tls, uvicorn_options
from fhir_server.web.cors import CorsSettingsInvalid
from fhir_server.workers import STARTUP_FAILURE, Workers

log = logging.getLogger("fhir_server")
# New containers between two young-generation collections once serving (700 by default): see settle_heap.
YOUNG_COLLECTION_THRESHOLD = 10_000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fhir-server", description="FHIR R4 server for a national health record")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    _settings_options(serve)
    config = commands.add_parser(
        "config", help="print the settings `serve` would use with these options (secrets masked) and exit; "
                       "each also comes from FHIR_<NAME> in the environment or a .env file")
    _settings_options(config)
    config.add_argument("--json", action="store_true", help="one JSON object instead of name = value lines")
    send = commands.add_parser("mllp-send", help="send an HL7 v2 message file over MLLP and print the ACK "
                                                  "(exit 0 on AA/CA, 1 otherwise)")
    send.add_argument("file", type=Path, help="the message (segments ended by CR or by line ends)")
    send.add_argument("--host", default="127.0.0.1")
    send.add_argument("--port", type=int, default=2575, help="the server's --mllp-port (default 2575)")
    send.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the ACK")
    reset.add_arguments(commands)
    facilities.add_arguments(commands)
    security_cli.add_arguments(commands)
    apps_cli.add_arguments(commands)
    enrol_cli.add_arguments(commands)
    plan = commands.add_parser("shard-plan", help="print the shard keys of the collections holding patient data (JSON)")
    plan.add_argument("--data-dir", type=Path, default=Path("./data"), help="the server's data dir")
    mongo_setup.add_arguments(commands)
    status_cli.add_arguments(commands)
    return parser


def _settings_options(parser: argparse.ArgumentParser) -> None:
    """The settings the command line may give; each overrides its FHIR_* variable (fhir_server.config).
    Values stay text here: the settings check them all at once, naming each bad one."""
    option = parser.add_argument
    option("--host", help="the address to listen on (default 127.0.0.1)")
    option("--port", help="the HTTP port (default 8080; 0: any free port)")
    option("--data-dir", help="where the embedded store keeps its file (default ./data)")
    option("--mllp-port", help="also accept HL7 v2 over MLLP on this port")
    option("--mllp-tls-cert", help="serve MLLP over TLS with this certificate (PEM)")
    option("--mllp-tls-key", help="the private key of --mllp-tls-cert (PEM)")
    option("--mllp-tls-ca", help="require MLLP client certificates signed by this CA (PEM)")
    option("--tls-cert", help="serve HTTPS with this certificate chain (PEM); HSTS is then on")
    option("--tls-key", help="the private key of --tls-cert (PEM)")
    option("--forwarded-allow-ips", metavar="ADDRESSES",
           help="believe X-Forwarded-Proto/-For from these proxies (comma-separated addresses or "
                "networks, '*' for any); without it those headers are ignored")
    option("--log-level", help="critical, error, warning, info (default) or debug, for every logger")
    option("--log-format", help="json, text, or auto (default: text on a terminal, JSON otherwise)")
    option("--workers", metavar="N",
           help=f"server processes sharing the port(s) and the store (default 1, at most {MAX_WORKERS})")


def _given(args: argparse.Namespace) -> dict[str, object]:
    """The settings options given on the command line."""
    return {name: value for name, value in vars(args).items() if name in Settings.model_fields and value is not None}


def send_file(args: argparse.Namespace) -> int:
    """`fhir-server mllp-send`: one message, as a sending system would frame it."""
    try:
        text = args.file.read_bytes()
    except OSError as exc:
        print(f"fhir-server mllp-send: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    # Segments end with CR in HL7 v2; a file edited by hand may end them with LF or CRLF.
    message = b"\r".join(line for line in text.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n") if line)
    try:
        ack = asyncio.run(mllp_send(args.host, args.port, message, timeout=args.timeout))
    except (OSError, TimeoutError) as exc:
        print(f"fhir-server mllp-send: no ACK from {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(ack.decode("utf-8", errors="replace").replace("\r", "\n").rstrip("\n"))
    return 0 if ack_fields(ack)["ack"] in ("AA", "CA") else 1


def show_config(args: argparse.Namespace) -> int:
    values = effective(load_settings(_given(args)))
    if args.json:
        print(json.dumps(values, indent=2))
    else:
        width = max(map(len, values))
        for name, value in values.items():
            print(f"{name:<{width}} = {'' if value is None else value}")
    return 0


class CannotListen(RuntimeError):
    """A port the server was told to use cannot be bound; the message is one line for the operator."""


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or CannotListen saying why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise CannotListen(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        # Reuse lets a restart bind while connections of the previous process linger in TIME_WAIT;
        # listening at once makes the port ours alone (two listeners never share it on Linux).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise CannotListen(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _check_external(url: str, data_dir: Path) -> StoreCapabilities:
    """Ask the store at MONGODB_URL what it is, and refuse it here, in one line, if this process may not use it."""
    client: MongoClient[dict] = MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        return check_store(client.admin.command("hello"), client.admin.command("buildInfo"), data_dir)
    except PyMongoError as exc:
        raise StoreUnavailable(f"cannot reach MongoDB at MONGODB_URL: {exc.__class__.__name__}") from exc
    finally:
        client.close()


def settle_heap() -> None:
    """The garbage collector tuned for serving, once start-up is over (issue 18, docs/PERFORMANCE.md).

    What start-up made (definitions, registries, compiled rules: most of the heap) is frozen: the
    collector's older generations no longer walk it, and a full pass over it took 0.2 s. The young
    generation is collected after 10,000 new containers instead of 700: a request's objects die
    with it (reference counting frees them) and only cyclic garbage waits for the collector, but
    with 16 requests in flight their live objects crossed 700 every few requests, and each young
    collection walked them all. Together: 0.10 ms of CPU per read, a tenth of it. Start-up's garbage
    is collected first, so nothing already unreachable is kept."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)


def settled(app: FastAPI) -> FastAPI:
    """`app` whose start-up ends with `settle_heap`: in each worker, before it accepts a connection,
    so no request waits on the collection it starts with."""
    start_up = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(served: Any) -> AsyncIterator[Any]:
        async with start_up(served) as state:
            settle_heap()
            yield state

    app.router.lifespan_context = lifespan
    return app


class _Server(uvicorn.Server):
    """uvicorn, calling `on_started` once the lifespan has run and the port is served, not before."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], object]) -> None:
        super().__init__(config)
        self.on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.on_started()


def serve(args: argparse.Namespace) -> int:
    settings = load_settings(_given(args))
    logs.configure(settings.log_level, settings.log_format)
    store: EmbeddedStore | None = None
    listener: socket.socket | None = None
    mllp: socket.socket | None = None
    try:
        check_tls(settings.tls_cert, settings.tls_key)
        if settings.mongodb_url:
            url = settings.mongodb_url
            capabilities = _check_external(url, settings.data_dir)
            where = (f"the embedded store of {settings.data_dir.resolve()} at MONGODB_URL" if capabilities.embedded
                     else "MongoDB at MONGODB_URL")
        else:
            # Before the ports: a second server on this data dir is told so, whatever its ports.
            store = EmbeddedStore(settings.data_dir)
            store.claim()
            where = f"embedded store under {store_dir(store.data_dir)}"
        listener = _listen(settings.host, settings.port)
        if settings.mllp_port is not None:
            # Bound here, before the store starts, so every worker accepts on the one port.
            mllp = _listen(settings.host, settings.mllp_port)
        if store is not None:
            url = store.start()
        if settings.workers > 1:
            # Before the app (and prometheus-client) is made: one scrape sums every worker.
            metrics.share_between_workers(settings.data_dir)
        host, port = listener.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if settings.tls_cert else "http"
        ready = f"ready: FHIR R4 at {scheme}://{shown}:{port}/fhir, {where}" + (
            f", HL7 v2 MLLP on port {settings.mllp_port}" if settings.mllp_port is not None else "")
        config = uvicorn.Config(settled(create_app(settings, url, mllp_listener=mllp)), host=settings.host, port=port,
                                # The loggers are set up above (observability.logs), uvicorn's too; the
                                # access line is the Observe middleware's, with the request id.
                                log_level=settings.log_level, log_config=None, access_log=False,
                                **uvicorn_options(settings.tls_cert, settings.tls_key, settings.forwarded_allow_ips))
        shown_dir = shlex.quote(str(settings.data_dir))
        ready += (f"\n  a token for curl or fhirpy: fhir-server token --data-dir {shown_dir} "
                  f"--audience {settings.base_url or f'{scheme}://{shown}:{port}/fhir'} platform   "
                  "(or practitioner/patient/system/admin; see fhir-server token --help)")
        if not settings.tls_cert:
            log.warning("%s", PLAIN_HTTP)
        # Workers are forked after this: whatever fails before (hooks, mail settings) fails once.
        say_ready = functools.partial(log.info, "%s", ready)
        if settings.workers > 1:
            return Workers(settings.workers, functools.partial(_serve_one, config, listener)).run(say_ready)
        return _serve_one(config, listener, say_ready)
    except (StoreUnavailable, CannotListen, HooksUnavailable, MailSettingsInvalid, CorsSettingsInvalid,
            TlsSettingsInvalid) as exc:
        print(f"fhir-server: {exc}", file=sys.stderr)
        return 1
    finally:
        for sock in (listener, mllp):
            if sock is not None:
                sock.close()
        if store is not None:
            store.stop()


def _serve_one(config: uvicorn.Config, listener: socket.socket, on_started: Callable[[], object]) -> int:
    server = _Server(config, on_started)
    try:
        server.run(sockets=[listener])
    except KeyboardInterrupt:
        # uvicorn raises Ctrl-C again once it has shut down gracefully: a stop asked for, not a failure.
        pass
    return 0 if server.started else STARTUP_FAILURE


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except SettingInvalid as exc:
        # A bad value is the operator's to fix: each named on its own line, like a usage error (2).
        for line in str(exc).splitlines():
            print(f"fhir-server: {line}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        # Settings() made by a command of its own, over a bad FHIR_* variable.
        for line in problems(exc):
            print(f"fhir-server: {line}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "config":
        return show_config(args)
    if args.command == "mllp-send":
        return send_file(args)
    if args.command == "reset":
        return reset.run(args)
    if args.command == "facilities":
        return facilities.run(args)
    if args.command == "token":
        return security_cli.token(args)
    if args.command == "clients":
        return security_cli.clients(args)
    if args.command == "keys":
        return security_cli.keys(args)
    if args.command == "apps":
        return apps_cli.run(args)
    if args.command == "enrol":
        return enrol_cli.run(args)
    if args.command == "shard-plan":
        # The plan follows from the resource types the server serves, the same for every data dir.
        print(json.dumps(shard_plan(structure.resource_types()), indent=2))
        return 0
    if args.command == "mongo-setup":
        return mongo_setup.run(args)
    if args.command == "status":
        return status_cli.run(args)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
