"""`python -m fhir_server.definitions.build PACKAGE_DIR`: derive `profiles/r4/` from the R4 package.

PACKAGE_DIR is the unpacked npm package `hl7.fhir.r4.examples` 4.0.1 (`npm pack` it and untar; its
`package/` folder). The package carries the specification's own conformance resources; this keeps
only what the server reads at run time, in a compact form, each file naming its source:

- `search-parameters.json`: the SearchParameters of the specification's `search-parameters.json`
  (those of version 4.0.1 that are not experimental: the package adds the extension packs'
  experimental parameters and the SearchParameter examples), without narrative, XPath and contacts;
- `compartmentdefinition-patient.json`: the Patient CompartmentDefinition without its narrative;
- `structure/<Type>.json`: each resource type's elements (path, types, cardinality, isSummary,
  required binding, contentReference) from its StructureDefinition snapshot, and
  `structure/base.json` the same for what they build on: Resource, DomainResource, the complex
  datatypes, and each primitive datatype with its regex;
Required bindings are checked from `required-bindings.json` and the ValueSets under
`profiles/ValueSet/R4` (see README.md there), not from this build.

Nothing here runs in the server; it is how the data under `profiles/r4/` was made.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fhir_server.config import PROJECT_ROOT

PACKAGE = "hl7.fhir.r4.examples"
VERSION = "4.0.1"
SOURCE = f"npm:{PACKAGE}@{VERSION}"
FHIR_TYPE = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX = "http://hl7.org/fhir/StructureDefinition/regex"
# Elements every resource, element and backbone element has; the loader adds them back.
RESOURCE_BASES = ("Resource", "DomainResource")
ELEMENT_CHILDREN = ("id", "extension")
BACKBONE_CHILDREN = ("id", "extension", "modifierExtension")
SEARCH_PARAMETER_KEYS = ("resourceType", "id", "url", "version", "name", "status", "experimental", "code", "base",
                         "type", "expression", "target", "multipleOr", "multipleAnd", "comparator", "modifier",
                         "chain", "component")


def _load_all(package: Path, kind: str) -> list[dict[str, Any]]:
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted(package.glob(f"{kind}-*.json"))]


def _type_code(element_type: dict[str, Any]) -> str:
    """`System.String` typed elements (ids, primitive values) name their FHIR type in an extension."""
    for extension in element_type.get("extension", ()):
        if extension.get("url") == FHIR_TYPE:
            return str(extension["valueUrl"])
    return str(element_type["code"])


def _element(element: dict[str, Any], root: str) -> list[Any] | None:
    path: str = element["path"]
    if path == root:
        return None
    relative = path[len(root) + 1:]
    row: list[Any] = [relative, [_type_code(t) for t in element.get("type", ())], element.get("min", 0),
                      element.get("max", "*")]
    extra: dict[str, Any] = {}
    if element.get("isSummary"):
        extra["summary"] = True
    if element.get("isModifier"):
        extra["modifier"] = True
    if "contentReference" in element:
        extra["contentReference"] = element["contentReference"].split(".", 1)[1]
    binding = element.get("binding") or {}
    if binding.get("strength") == "required" and binding.get("valueSet") and row[1] == ["code"]:
        extra["binding"] = binding["valueSet"].split("|", 1)[0]
    references = sorted({p.rsplit("/", 1)[-1] for t in element.get("type", ()) for p in t.get("targetProfile", ())})
    if references:
        extra["targets"] = references
    if extra:
        row.append(extra)
    return row


def _is_inherited(relative: str, parents: dict[str, list[str]], base: str | None) -> bool:
    parent, _, name = relative.rpartition(".")
    if not parent:
        return base in RESOURCE_BASES and name in _BASE_ELEMENT_NAMES[base]
    kinds = parents.get(parent, [])
    if kinds == ["BackboneElement"]:
        return name in BACKBONE_CHILDREN
    return kinds == ["Element"] and name in ELEMENT_CHILDREN


_BASE_ELEMENT_NAMES = {
    "Resource": ("id", "meta", "implicitRules", "language"),
    "DomainResource": ("id", "meta", "implicitRules", "language", "text", "contained", "extension", "modifierExtension"),
}


def structure_of(definition: dict[str, Any], keep_inherited: bool = False) -> dict[str, Any]:
    root = definition["type"]
    base = definition.get("baseDefinition", "").rsplit("/", 1)[-1] or None
    rows: list[list[Any]] = []
    kinds: dict[str, list[str]] = {}
    for element in definition["snapshot"]["element"]:
        row = _element(element, root)
        if row is None:
            continue
        kinds[row[0]] = row[1]
        if not keep_inherited and _is_inherited(row[0], kinds, base):
            continue
        rows.append(row)
    out: dict[str, Any] = {"type": root, "kind": definition["kind"], "source": f"{SOURCE} {definition['url']}"}
    if base:
        out["base"] = base
    if definition.get("abstract"):
        out["abstract"] = True
    if definition["kind"] == "primitive-type":
        value = next(e for e in definition["snapshot"]["element"] if e["path"] == f"{root}.value")
        regex = [x["valueString"] for t in value.get("type", ()) for x in t.get("extension", ()) if x["url"] == REGEX]
        out["regex"] = regex[0] if regex else None
        out["elements"] = []
    else:
        out["elements"] = rows
    return out


def _dump_rows(head: dict[str, Any], key: str, rows: list[Any]) -> str:
    """One JSON document, one row per line: small diffs when the data is rebuilt."""
    text = json.dumps(head, ensure_ascii=False)[:-1]
    lines = ",\n".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) for row in rows)
    return f'{text}, "{key}": [\n{lines}\n]}}\n'


def build(package: Path, out: Path) -> None:
    manifest = json.loads((package / "package.json").read_text(encoding="utf-8"))
    if (manifest.get("name"), manifest.get("version")) != (PACKAGE, VERSION):
        raise SystemExit(f"{package} is {manifest.get('name')} {manifest.get('version')}, not {PACKAGE} {VERSION}")
    out.mkdir(parents=True, exist_ok=True)

    parameters = [p for p in _load_all(package, "SearchParameter")
                  if p.get("version") == VERSION and not p.get("experimental")]
    entries = [{"fullUrl": p["url"], "resource": {k: p[k] for k in SEARCH_PARAMETER_KEYS if k in p}}
               for p in sorted(parameters, key=lambda p: p["id"])]
    head = {"resourceType": "Bundle", "id": "r4-search-parameters", "meta": {"source": SOURCE},
            "type": "collection"}
    (out / "search-parameters.json").write_text(_dump_rows(head, "entry", entries), encoding="utf-8")

    compartment = json.loads((package / "CompartmentDefinition-patient.json").read_text(encoding="utf-8"))
    compartment.pop("text", None)
    compartment["meta"] = {"source": SOURCE}
    (out / "compartmentdefinition-patient.json").write_text(
        _dump_rows({k: v for k, v in compartment.items() if k != "resource"}, "resource", compartment["resource"]),
        encoding="utf-8")

    definitions = _load_all(package, "StructureDefinition")
    resources = [d for d in definitions if d["kind"] == "resource" and d.get("derivation") == "specialization"
                 and not d.get("abstract")]
    bases = [d for d in definitions if d["id"] in ("Resource", "DomainResource", "Element")
             or d["kind"] in ("complex-type", "primitive-type") and d.get("derivation") == "specialization"]
    # Quantity profiles used as element types in their own name (`Age`, `SimpleQuantity`...).
    bases += [d for d in definitions if d["kind"] == "complex-type" and d.get("derivation") == "constraint"
                  and d["type"] == "Quantity"]
    structure = out / "structure"
    structure.mkdir(exist_ok=True)
    for old in structure.glob("*.json"):
        old.unlink()
    for definition in resources:
        shape = structure_of(definition)
        (structure / f"{definition['type']}.json").write_text(
            _dump_rows({k: v for k, v in shape.items() if k != "elements"}, "elements", shape["elements"]),
            encoding="utf-8")
    types = []
    for definition in sorted(bases, key=lambda d: d["id"]):
        shape = structure_of(definition)
        # A profile on Quantity is known by its id (`SimpleQuantity`), its structure is Quantity's.
        if definition.get("derivation") == "constraint":
            shape = {"type": definition["id"], "kind": "complex-type", "source": shape["source"], "alias": "Quantity",
                     "elements": []}
        types.append(shape)
    head = {"source": SOURCE, "note": "What every R4 resource builds on: Resource, DomainResource and the "
                                      "datatypes; see fhir_server.definitions.build"}
    (structure / "base.json").write_text(
        _dump_rows(head, "types", types), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fhir_server.definitions.build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package", type=Path, help="the unpacked package/ folder of hl7.fhir.r4.examples 4.0.1")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "profiles" / "r4")
    args = parser.parse_args(argv)
    build(args.package, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
