"""python -m conformance --base-url https://host/fhir (--token T | --client-id ID --key PEM) [pytest options]

Runs the HTTP-level suites against that server and exits with pytest's status. The server must
accept writes (the suite creates its own uniquely identified data and never deletes others'), so
the run needs a token with read and write scopes on every type: given with --token, or obtained
with SMART Backend Services from a registered client's id and private key.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

from conformance.auth import client_credentials_token

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
    parser.add_argument("--token", default=os.environ.get("FHIR_SERVER_TOKEN"), help="bearer token (default: FHIR_SERVER_TOKEN)")
    parser.add_argument("--client-id", help="a registered client, to get a token with SMART Backend Services")
    parser.add_argument("--key", type=Path, help="the client's private key (PEM, RSA or EC P-384)")
    parser.add_argument("--kid", help="the key id of --key in the client's JWKS")
    parser.add_argument("--scope", default="system/*.cruds", help="scopes asked with --client-id")
    args, pytest_args = parser.parse_known_args(argv)
    os.environ["FHIR_SERVER_URL"] = args.base_url.rstrip("/")
    token = args.token
    if args.client_id:
        if args.key is None:
            parser.error("--client-id needs --key")
        try:
            token = client_credentials_token(args.base_url, args.client_id, args.key, args.scope, args.kid)
        except (RuntimeError, OSError, ValueError) as exc:
            print(f"python -m conformance: no token: {exc}", file=sys.stderr)
            return 2
    if token:
        os.environ["FHIR_SERVER_TOKEN"] = token
    paths = [str(SUITES[name]) for name in (args.suite or sorted(SUITES))]
    return int(pytest.main([*paths, *LOCAL_ONLY, "-p", "no:cacheprovider", "--rootdir", str(ROOT), *pytest_args]))


if __name__ == "__main__":
    sys.exit(main())
