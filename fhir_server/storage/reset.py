"""`fhir-server reset`: remove a data dir (the embedded store, keys, mail spool, counters) to start
again from nothing.

It stops nothing: while a server holds the data dir (its lock, fhir_server.storage.embedded) it
refuses and says so. It removes only a directory a server has used (one holding `server.lock`),
says what it removes, and asks for `yes` on a terminal unless `--yes` is given.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from fhir_server.storage.embedded import EmbeddedStore, StoreUnavailable

LOCK = "server.lock"


def add_arguments(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    reset = commands.add_parser("reset", help="remove the data dir of a stopped server (its store, keys and files)")
    reset.add_argument("--data-dir", type=Path, default=Path("./data"), help="the server's data dir (default ./data)")
    reset.add_argument("--yes", action="store_true", help="do not ask (scripts); without it a terminal is asked")


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def run(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir
    if not data_dir.exists():
        print(f"nothing to reset: {data_dir} does not exist")
        return 0
    if not (data_dir / LOCK).exists():
        print(f"fhir-server reset: {data_dir} is not a server's data dir (no {LOCK}); nothing removed", file=sys.stderr)
        return 1
    store = EmbeddedStore(data_dir)
    try:
        store.claim()
    except StoreUnavailable as exc:
        print(f"fhir-server reset: {exc}: stop it first (Ctrl-C, or kill that PID); nothing removed", file=sys.stderr)
        return 1
    try:
        print(f"this removes {data_dir.resolve()} and everything in it:")
        for entry in sorted(data_dir.iterdir()):
            print(f"  {entry.name}{'/' if entry.is_dir() else ''}  ({_size(entry) / 1e6:.1f} MB)")
        if not args.yes:
            if not sys.stdin.isatty():
                print("fhir-server reset: not a terminal: give --yes (make reset YES=1) to remove it", file=sys.stderr)
                return 1
            if input("type yes to remove it: ").strip() != "yes":
                print("nothing removed")
                return 1
        shutil.rmtree(data_dir)
        print(f"removed {data_dir}")
        return 0
    finally:
        store.release()
