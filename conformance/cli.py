"""fhir-conformance: conformance tests of a FHIR R4 server (REST interactions, IHE MHD with ANS
PDSm, the national record's access rules, HL7 v2 over MLLP), each tied to the requirement it checks.

    fhir-conformance --base-url URL [--token T | --client-id ID --private-key PEM] [options]
    fhir-conformance --list [--select ...]
    fhir-conformance validate FILE... [--base-url URL] [--report DIR]

The exit status is 0 only when no test failed (not declared and not run are not failures);
2 when the run could not start (no CapabilityStatement, no token)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from conformance import runner
from conformance.auth import client_credentials_token
from conformance.model import Result, Verdict
from conformance.registry import Case, all_cases, select
from conformance.reports import Run, text_summary, write_all
from conformance.session import ROLES, Options, Session

PROG = "fhir-conformance"


def _words(values: list[str] | None) -> list[str]:
    return [w for value in values or [] for w in value.split(",") if w.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                                epilog="Role tokens, --mllp and --patient-id may also come from --config (TOML or JSON).")
    p.add_argument("--base-url", help="FHIR base URL, e.g. https://host/fhir")
    p.add_argument("--config", type=Path, help="a TOML or JSON file with any of these options (tokens under [roles])")
    p.add_argument("--token", help="bearer token for the tool's own requests (read and write)")
    p.add_argument("--client-id", help="a registered client: the tool gets its token with SMART Backend Services")
    p.add_argument("--private-key", type=Path, help="the client's private key (PEM, RSA or EC P-384)")
    p.add_argument("--kid", help="the key id of --private-key in the client's JWKS")
    p.add_argument("--scope", default="system/*.cruds", help="scopes asked with --client-id (default: system/*.cruds)")
    for role in ROLES:
        p.add_argument(f"--{role.replace('_', '-')}-token", dest=f"role_{role}", metavar="TOKEN",
                       help=f"token of the {role.replace('_', ' ')} (access-rule tests)")
    p.add_argument("--patient-id", help="the Patient the role tokens are about (default: found with the patient token)")
    p.add_argument("--mllp", metavar="HOST:PORT", help="the server's MLLP listener, for the HL7 v2 tests")
    p.add_argument("--cda-url", help="the server's CDA R2 intake URL (FHIR cannot declare it), for the CDA tests")
    p.add_argument("--list", action="store_true", help="print the selected tests and their requirements, run nothing")
    p.add_argument("--select", action="append", metavar="IDS_OR_TAGS", help="run only these ids or tags (comma-separated)")
    p.add_argument("--exclude", action="append", metavar="IDS_OR_TAGS", help="leave out these ids or tags")
    p.add_argument("--report", type=Path, metavar="DIR", help="write report.html, junit.xml and report.json there")
    p.add_argument("--keep", action="store_true", help="leave the data the run created (tagged with the run id)")
    p.add_argument("--large", action="store_true", help="allow request bodies over 10 MB")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each answer (default 60)")
    p.add_argument("--quiet", "-q", action="store_true", help="print only failures and the summary")
    return p


def load_config(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a table of options")
    return data


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    except BrokenPipeError:
        # Output piped into a reader that stopped (`--list | head`): not an error of the run.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: list[str]) -> int:
    if argv[:1] == ["validate"]:
        return validate(argv[1:])
    args = parser().parse_args(argv)
    cases = select(all_cases(), _words(args.select), _words(args.exclude))
    if not cases:
        # A mistyped --select must not pass a CI job by running nothing.
        print(f"{PROG}: no test matches --select {','.join(_words(args.select))} "
              f"--exclude {','.join(_words(args.exclude))} (see --list)", file=sys.stderr)
        return 2
    if args.list:
        for case in cases:
            print(f"{case.id:<28} [{', '.join(case.tags)}] {case.title}\n{'':<28} {case.requirement.label()}: "
                  f"\u201c{case.requirement.text}\u201d")
        print(f"{len(cases)} tests", file=sys.stderr)
        return 0
    try:
        options = build_options(args)
    except (OSError, ValueError, KeyError, RuntimeError, httpx.HTTPError) as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    return run(options, cases, args.report, args.quiet)


def build_options(args: argparse.Namespace) -> Options:
    config = load_config(args.config) if args.config else {}
    base_url = args.base_url or config.get("base_url")
    if not base_url:
        raise ValueError("--base-url is required (or base_url in --config)")
    roles = {role: str(t) for role, t in (config.get("roles") or {}).items() if role in ROLES and t}
    unknown = set(config.get("roles") or {}) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles in the config: {', '.join(sorted(unknown))} (known: {', '.join(ROLES)})")
    roles.update({role: getattr(args, f"role_{role}") for role in ROLES if getattr(args, f"role_{role}")})
    token = args.token or config.get("token")
    client_id = args.client_id or config.get("client_id")
    if client_id:
        key = args.private_key or (Path(config["private_key"]) if config.get("private_key") else None)
        if key is None:
            raise ValueError("--client-id needs --private-key")
        token = client_credentials_token(base_url, client_id, key, args.scope, args.kid or config.get("kid"))
    mllp = args.mllp or config.get("mllp")
    address = None
    if mllp:
        host, _, port = str(mllp).rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--mllp takes HOST:PORT, not {mllp!r}")
        address = (host, int(port))
    return Options(base_url.rstrip("/"), token, roles, args.patient_id or config.get("patient_id"), address,
                   cda_url=args.cda_url or config.get("cda_url"), keep=args.keep or bool(config.get("keep")), large=args.large or bool(config.get("large")),
                   timeout=args.timeout)


def capability_statement(options: Options) -> dict[str, Any]:
    """GET [base]/metadata: every run starts here (RuntimeError says why it could not)."""
    headers = {"Accept": "application/fhir+json"}
    if options.token:
        headers["Authorization"] = f"Bearer {options.token}"
    try:
        response = httpx.get(f"{options.base_url}/metadata", headers=headers, timeout=options.timeout)
    except httpx.HTTPError as error:
        raise RuntimeError(f"cannot reach {options.base_url}/metadata: {error}") from error
    if response.status_code == 401:
        raise RuntimeError(f"{options.base_url}/metadata answered 401: the server wants a token "
                           "(--token, or --client-id with --private-key)")
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or body.get("resourceType") != "CapabilityStatement":
        raise RuntimeError(f"{options.base_url}/metadata did not answer a CapabilityStatement "
                           f"(status {response.status_code}): is this a FHIR base URL?")
    return dict(body)


def run(options: Options, cases: list[Case], report: Path | None, quiet: bool) -> int:
    try:
        capability = capability_statement(options)
    except RuntimeError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    session = Session(options, capability)
    software = {**capability.get("software", {}),
                "implementation": (capability.get("implementation") or {}).get("description", ""),
                "fhirVersion": capability.get("fhirVersion", "")}
    print(f"{PROG}: {options.base_url} — {software.get('name', '?')} {software.get('version', '')}, "
          f"{len(cases)} tests, run {session.run_id}", file=sys.stderr)

    def progress(result: Result) -> None:
        if not quiet or result.verdict in (Verdict.FAILED, Verdict.ERROR):
            line = f"{str(result.verdict).upper():<13} {result.id} {result.title}"
            print(line + (f"\n{'':<14}{result.message}" if result.message and result.verdict != Verdict.PASSED else ""))

    date = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        results = runner.run(session, cases, progress)
        created = runner.clean_up(session)
    finally:
        session.close()
    outcome = Run(options.base_url, date, options.shown(), software, results, created, session.run_id)
    left = [c for c in created if not c["deleted"]]
    if left:
        print(f"{len(left)} resources left on the server (tag {session.tag()['tag'][0]['system']}|{session.run_id}): "
              + ", ".join(f"{c['reference']} ({c['note']})" for c in left[:10]), file=sys.stderr)
    if report is not None:
        for path in write_all(outcome, report):
            print(f"wrote {path}", file=sys.stderr)
    print(text_summary(outcome))
    return 1 if outcome.failed else 0


def validate(argv: list[str]) -> int:
    """fhir-conformance validate FILE...: checks a tester's own ITI-65 bundles, CDA documents and HL7 v2
    messages without storing anything; offline unless --base-url is given."""
    p = argparse.ArgumentParser(prog=f"{PROG} validate", description="checks ITI-65 bundles, CDA documents and "
                                "HL7 v2 messages without storing anything; offline unless --base-url is given")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--base-url", help="also ask this server (hash/size of referenced documents, known patient)")
    p.add_argument("--token", help="bearer token for --base-url")
    p.add_argument("--report", type=Path, metavar="DIR", help="write report.html, junit.xml and report.json there")
    args = p.parse_args(argv)
    from conformance.validate import validate_files

    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        print(f"{PROG} validate: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    date = datetime.now(UTC).isoformat(timespec="seconds")
    results = validate_files(list(args.files), args.base_url, args.token)
    for result in results:
        print(f"{str(result.verdict).upper():<13} {result.id} {result.title}"
              + (f"\n{'':<14}{result.message}" if result.message else ""))
    outcome = Run(args.base_url or "offline", date, {"files": [str(f) for f in args.files],
                                                     "base_url": args.base_url, "token": "given" if args.token else "none"},
                  {}, results)
    if args.report is not None:
        for path in write_all(outcome, args.report):
            print(f"wrote {path}", file=sys.stderr)
    print(text_summary(outcome))
    return 1 if outcome.failed else 0
