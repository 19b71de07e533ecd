"""The ANS correspondence tables that give a shared document its class and format codes.

They live as ConceptMaps in `mappings/ans/`, each with the version and the address it was
published at (`meta.source`); `python -m cda.refresh_tables` regenerates them:

- ASS_X04: document type (LOINC or TRE_A05) -> class (TRE_A03), the `category` of the record;
- ASS_A11: CDA model (`ClinicalDocument/templateId/@root`) -> format code, for structured bodies,
  read with a hand-kept supplement for models the current publication dropped;
- ASS_A12: media type of a level-1 body (`nonXMLBody/text/@mediaType`) -> format code.

Displays come from the code systems and value sets the server enforces (`profiles/`), so a code
shows the label the validator knows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from cda.mappings import table

_ROOT = Path(__file__).resolve().parent.parent
ANS_DIR = _ROOT / "mappings" / "ans"
_PROFILES = _ROOT / "profiles"
X04 = "ConceptMap-ASS-X04-CorrespondanceType-Classe-CISIS.json"
A11 = "ConceptMap-ASS-A11-CorresModeleCDA-XdsFormatCode-CISIS.json"
A11_SUPPLEMENT = "ConceptMap-ASS-A11-supplement.json"
A12 = "ConceptMap-ASS-A12-CorresMediaTypeCDANonStructure-XdsFormatCode-CISIS.json"
# Where the labels of the target codes are: the class code system and the format value set.
_CLASS_CODES = _PROFILES / "CodeSystem" / "CodeSystem-TRE-A03-ClasseDocument.json"
_FORMAT_CODES = _PROFILES / "ValueSet" / "ValueSet-JDV-J10-XdsFormatCode-CISIS.json"


@dataclass(frozen=True)
class Correspondence:
    """One table: (source system, source code) -> target Coding, plus what to cite in messages."""

    name: str
    version: str
    targets: dict[tuple[str, str], dict[str, str]]

    def lookup(self, system: str, code: str) -> dict[str, str] | None:
        found = self.targets.get((system, code))
        return dict(found) if found else None


def _read(name: str) -> dict[str, Any]:
    with (ANS_DIR / name).open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


@cache
def _labels() -> dict[tuple[str, str], str]:
    labels: dict[tuple[str, str], str] = {}
    classes = json.loads(_CLASS_CODES.read_text(encoding="utf-8"))
    for concept in classes.get("concept", []):
        labels[(classes["url"], concept["code"])] = concept["display"]
    formats = json.loads(_FORMAT_CODES.read_text(encoding="utf-8"))
    for include in formats["compose"]["include"]:
        for concept in include.get("concept", []):
            if concept.get("display"):
                labels[(include["system"], concept["code"])] = concept["display"]
    return labels


def _load(*names: str) -> Correspondence:
    """The tables in `names`, earlier ones winning: the official table first, a supplement after."""
    targets: dict[tuple[str, str], dict[str, str]] = {}
    first = _read(names[0])
    for name in names:
        for group in _read(name)["group"]:
            for element in group["element"]:
                key = (group["source"], element["code"])
                # A one-to-one map only: elements with several narrower targets (the level-1 group of
                # ASS_A11) are chosen by another table (ASS_A12) and are not read here.
                if key in targets or len(element["target"]) != 1:
                    continue
                code = element["target"][0]["code"]
                coding = {"system": group["target"], "code": code}
                if label := _labels().get((group["target"], code)):
                    coding["display"] = label
                targets[key] = coding
    return Correspondence(first["name"], first["version"], targets)


@cache
def type_to_class() -> Correspondence:
    return _load(X04)


@cache
def model_to_format() -> Correspondence:
    return _load(A11, A11_SUPPLEMENT)


@cache
def media_type_to_format() -> Correspondence:
    return _load(A12)


# The R220 code system of ASS_A11 holds CDA template OIDs; R222 of ASS_A12 holds media types.
_MODELS = "https://mos.esante.gouv.fr/NOS/TRE_R220-ModeleDocumentCDAStructure/FHIR/TRE-R220-ModeleDocumentCDAStructure"
_MEDIA_TYPES = "https://mos.esante.gouv.fr/NOS/TRE_R222-MediaTypeCorpsCDANonStructure/FHIR/TRE-R222-MediaTypeCorpsCDANonStructure"


def document_class(type_codings: list[dict[str, Any]]) -> dict[str, str] | None:
    """The class of the first coding of the document type that ASS_X04 knows."""
    classes = type_to_class()
    for coding in type_codings:
        if found := classes.lookup(coding.get("system", ""), coding.get("code", "")):
            return found
    return None


def model_format(template_roots: list[str]) -> dict[str, str] | None:
    """The format of a structured CDA from its model; CI-SIS documents list the generic templates
    first and the model's own last, so the last known one wins."""
    formats = model_to_format()
    for root in reversed(template_roots):
        if found := formats.lookup(_MODELS, root):
            return found
    return None


def body_format(media_type: str) -> dict[str, str] | None:
    """The format of a level-1 CDA from the media type of its body."""
    return media_type_to_format().lookup(_MEDIA_TYPES, media_type)


def not_cda_format() -> dict[str, str]:
    """A document that is not a CDA (a PDF or text sent as such): its MIME type describes it."""
    return dict(table("document_format")["mime_type_sufficient"])
