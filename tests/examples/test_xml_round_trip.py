"""The official R4 examples through FHIR XML: JSON -> XML -> JSON gives the example back, and the
server's XML answer for each stored example reads back as its JSON answer.

The examples package holds JSON only (docs/DECISIONS.md): the XML parser is also checked on XML
written by hand from the specification's rules (tests/api/test_xml.py). Narratives are compared as
canonical XML: `&quot;` and `"`, or CRLF and LF, are the same XHTML.
"""

from __future__ import annotations

from typing import Any

import httpx
from lxml import etree

from fhir_server import fhir_xml
from tests.examples.conftest import Stored
from tests.r4_examples import Example


def canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (_c14n(v) if k == "div" and isinstance(v, str) else canonical(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def _c14n(div: str) -> bytes:
    return etree.tostring(etree.fromstring(div.replace("\r\n", "\n").encode()), method="c14n", with_comments=False)


def test_example_round_trips_through_xml(all_examples: list[Example], example_file: str) -> None:
    example = next(e for e in all_examples if e.file == example_file)
    xml = fhir_xml.to_xml(example.resource)
    root = etree.fromstring(xml)
    assert root.tag == f"{{{fhir_xml.FHIR_NS}}}{example.type}"
    assert canonical(fhir_xml.from_xml(xml)) == canonical(example.resource)


def test_stored_example_reads_the_same_in_xml(fhir: httpx.Client, stored: dict[str, Stored], example_file: str) -> None:
    outcome = stored[example_file]
    url = f"/{outcome.example.type}/{outcome.id}"
    as_json = fhir.get(url, headers={"Accept": "application/fhir+json"})
    as_xml = fhir.get(url, headers={"Accept": "application/fhir+xml"})
    assert as_xml.status_code == 200 and as_xml.headers["content-type"].startswith("application/fhir+xml")
    assert canonical(fhir_xml.from_xml(as_xml.content)) == canonical(as_json.json())
