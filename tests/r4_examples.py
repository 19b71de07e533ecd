"""The official FHIR R4 examples: npm package `hl7.fhir.r4.examples` 4.0.1, fetched once, never committed.

`make test-data` (`python -m tests.r4_examples`) downloads the package from the npm registry into
`.cache/` and checks it against the registry's published integrity; the example tests do the same
on first use and skip, saying why, when the registry cannot be reached. `make test` stores one
example per resource type; `make test-all` (R4_EXAMPLES=all) stores every one of them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "hl7.fhir.r4.examples"
VERSION = "4.0.1"
# dist.integrity of the package on registry.npmjs.org.
INTEGRITY = "sha512-DXBdIZOeQaSKIgCU7w6HOC7sw/6BzylmipLkBW4f//pT+Bc94x+8LImwTdvaNThPJoOzpBzvxAzNqjeu3X/zLw=="
CACHE = ROOT / ".cache" / f"{PACKAGE}-{VERSION}"
ALL = os.environ.get("R4_EXAMPLES", "").lower() == "all"
# `make test` leaves out the few examples of several megabytes (the specification's definition
# Bundles, the ImplementationGuide): `make test-all` stores them.
QUICK_MAX_BYTES = 200_000


class Unavailable(RuntimeError):
    """The package is not in the cache and the registry cannot be reached."""


def _tarball_url() -> str:
    registry = os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY") or "https://registry.npmjs.org/"
    return f"{registry.rstrip('/')}/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"


def fetch() -> Path:
    """The unpacked `package/` folder, downloaded and checked on first use."""
    folder = CACHE / "package"
    done = CACHE / "complete"
    if done.exists():
        return folder
    url = _tarball_url()
    try:
        response = httpx.get(url, timeout=120.0, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise Unavailable(f"the R4 examples are not in {CACHE} and {url} cannot be fetched ({exc}); "
                          "run `make test-data` where the npm registry is reachable") from exc
    digest = "sha512-" + base64.b64encode(hashlib.sha512(response.content).digest()).decode("ascii")
    if digest != INTEGRITY:
        raise Unavailable(f"{url} does not have the published integrity of {PACKAGE} {VERSION}")
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
        for member in archive.getmembers():
            name = Path(member.name)
            # Only the package's own JSON files, written under our folder whatever their path says.
            if member.isfile() and len(name.parts) == 2 and name.parts[0] == "package" and name.suffix == ".json":
                extracted = archive.extractfile(member)
                assert extracted is not None
                (folder / name.name).write_bytes(extracted.read())
    done.write_text(url, encoding="utf-8")
    return folder


@dataclass(frozen=True)
class Example:
    file: str
    resource: dict[str, Any]
    size: int

    @property
    def type(self) -> str:
        return str(self.resource["resourceType"])

    @property
    def id(self) -> str:
        return str(self.resource["id"])


@cache
def load_all() -> list[Example]:
    """The examples this run stores or refuses: all of them, or (make test) those small enough."""
    folder = fetch()
    examples = []
    for path in sorted(folder.glob("*.json")):
        size = path.stat().st_size
        if path.name == "package.json" or (not ALL and size > QUICK_MAX_BYTES):
            continue
        examples.append(Example(path.name, json.loads(path.read_bytes()), size))
    return examples


def select(examples: list[Example], invalid: dict[str, str]) -> list[Example]:
    """Every valid example, or one per type: `<Type>-example.json` when valid, else the first valid one."""
    if ALL:
        return [e for e in examples if e.file not in invalid]
    chosen: dict[str, Example] = {}
    for example in examples:
        if example.file in invalid:
            continue
        current = chosen.get(example.type)
        if current is None or (example.file == f"{example.type}-example.json" != current.file):
            chosen[example.type] = example
    return sorted(chosen.values(), key=lambda e: e.file)


def by_type(examples: list[Example]) -> Iterator[tuple[str, list[Example]]]:
    types: dict[str, list[Example]] = {}
    for example in examples:
        types.setdefault(example.type, []).append(example)
    yield from sorted(types.items())


if __name__ == "__main__":
    try:
        print(f"R4 examples in {fetch()}")
    except Unavailable as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
