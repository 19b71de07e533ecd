"""python -m conformance --base-url https://host/fhir [pytest options]

Runs the HTTP-level suites against that server and exits with pytest's status. The server must
accept writes (the suite creates its own uniquely identified data and never deletes others').
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUITES = {
    "core": ROOT / "tests" / "api",
    "search": ROOT / "tests" / "search",
    "mhd": ROOT / "tests" / "mhd",
}
# Tests that start or stop a server process of their own cannot run against someone else's.
LOCAL_ONLY = ["--deselect", str(ROOT / "tests" / "api" / "test_store_lifecycle.py")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance", description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="FHIR base URL, e.g. http://127.0.0.1:8080/fhir")
    parser.add_argument("--suite", action="append", choices=sorted(SUITES), help="run only these suites (repeatable)")
    args, pytest_args = parser.parse_known_args(argv)
    os.environ["FHIR_SERVER_URL"] = args.base_url.rstrip("/")
    paths = [str(SUITES[name]) for name in (args.suite or sorted(SUITES))]
    return int(pytest.main([*paths, *LOCAL_ONLY, "-p", "no:cacheprovider", "--rootdir", str(ROOT), *pytest_args]))


if __name__ == "__main__":
    sys.exit(main())
