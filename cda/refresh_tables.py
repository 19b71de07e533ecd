"""Regenerate the ANS correspondence tables of `mappings/ans/` from their publication.

    python -m cda.refresh_tables [--version 1.14.0] [--from DIR] [--out DIR]     (or: make ans-tables)

Reads ASS_X04, ASS_A11 and ASS_A12 as published in the "Terminologies de Santé" implementation
guide (https://interop.esante.gouv.fr/terminologies/<version>/ConceptMap-<id>.json), or from DIR
holding those files already downloaded, keeps what the server reads (no narrative, contacts or
displays: displays come from the value sets in `profiles/`), records the address in
`meta.source` and writes one file per table. The hand-kept supplement of ASS_A11 is not touched;
its entries the new table maps again are listed so they can be removed from it.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

from cda import correspondence

PUBLICATION = "https://interop.esante.gouv.fr/terminologies"
TABLES = (correspondence.X04, correspondence.A11, correspondence.A12)
_KEPT = ("resourceType", "id", "meta", "url", "identifier", "version", "name", "title", "status", "date",
         "publisher", "description", "sourceUri", "targetUri", "group")
_GROUP = ("source", "sourceVersion", "target", "targetVersion", "element")
_TARGET = ("code", "equivalence", "comment")


def normalized(published: dict[str, Any], source: str) -> dict[str, Any]:
    """The parts of a published ConceptMap the server reads, in a stable order."""
    if published.get("resourceType") != "ConceptMap" or not published.get("version"):
        raise ValueError(f"{source} is not a versioned ConceptMap")
    out = {key: published[key] for key in _KEPT if key in published}
    out["meta"] = {"source": source}
    out["group"] = [
        {
            **{key: group[key] for key in _GROUP if key in group and key != "element"},
            "element": [
                {"code": element["code"], "target": [{key: t[key] for key in _TARGET if key in t} for t in element.get("target", [])]}
                for element in group.get("element", [])
            ],
        }
        for group in published["group"]
    ]
    return {key: out[key] for key in _KEPT if key in out}


def _published(name: str, version: str, local: Path | None) -> dict[str, Any]:
    if local is not None:
        data: dict[str, Any] = json.loads((local / name).read_text(encoding="utf-8"))
        return data
    with urllib.request.urlopen(f"{PUBLICATION}/{version}/{name}", timeout=60) as response:
        fetched: dict[str, Any] = json.loads(response.read())
    return fetched


def refresh(version: str, local: Path | None, out: Path) -> list[str]:
    """Write the tables of `version`; returns the supplement entries the new ASS_A11 maps again."""
    for name in TABLES:
        table = normalized(_published(name, version, local), f"{PUBLICATION}/{version}/{name}")
        (out / name).write_text(json.dumps(table, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    mapped = {e["code"] for g in json.loads((out / correspondence.A11).read_text(encoding="utf-8"))["group"] for e in g["element"]}
    supplement = json.loads((correspondence.ANS_DIR / correspondence.A11_SUPPLEMENT).read_text(encoding="utf-8"))
    return [e["code"] for g in supplement["group"] for e in g["element"] if e["code"] in mapped]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cda.refresh_tables", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default="1.14.0", help="version of the Terminologies de Santé guide")
    parser.add_argument("--from", dest="local", type=Path, help="read the published files from this directory")
    parser.add_argument("--out", type=Path, default=correspondence.ANS_DIR)
    args = parser.parse_args(argv)
    try:
        again = refresh(args.version, args.local, args.out)
    except (OSError, ValueError, KeyError) as exc:
        print(f"refresh_tables: {exc}", file=sys.stderr)
        return 1
    print(f"ANS tables of Terminologies de Santé {args.version} written to {args.out}")
    if again:
        print(f"ASS_A11 maps again {', '.join(again)}: remove them from {correspondence.A11_SUPPLEMENT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
