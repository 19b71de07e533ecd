"""Documents of the sizes the ingest paths carry: a PDF, a CDA discharge letter, an MDM^T02 message.

Each call gives a document of its own (new ids), so the server's replay detection never turns a
measured request into a no-op.
"""

from __future__ import annotations

import base64
import random
from datetime import datetime, timezone
from pathlib import Path

from lxml import etree

from benchmarks.measure import NotAvailable

CDA_NS = "urn:hl7-org:v3"
# The discharge letter written for the CDA tests: a real CI-SIS LDL-SES structure of about 75 KB.
DISCHARGE_LETTER = Path(__file__).resolve().parent.parent / "tests" / "cda" / "fixtures" / "ldl_ses_discharge_letter.xml"
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
DOCUMENT_ROOT = "1.2.250.1.999.9.1"  # an OID arc for benchmark document ids


def pdf(size: int, seed: int) -> bytes:
    """A well-formed one-page PDF whose stream is padded with incompressible bytes up to `size`."""
    head = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n" \
           b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\n"
    tail = b"\nendstream endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    body_size = max(size - len(head) - len(tail) - 40, 0)
    stream = f"4 0 obj<</Length {body_size}>>stream\n".encode()
    return head + stream + random.Random(seed).randbytes(body_size) + tail


def _letter_tree() -> etree._ElementTree:
    if not DISCHARGE_LETTER.is_file():
        raise NotAvailable(f"no discharge letter fixture at {DISCHARGE_LETTER}")
    return etree.parse(str(DISCHARGE_LETTER), PARSER)


def discharge_letter(serial: str, min_size: int = 0) -> bytes:
    """The fixture letter with its own document and set ids, its narrative repeated up to `min_size` bytes."""
    tree = _letter_tree()
    root = tree.getroot()
    ns = {"h": CDA_NS}
    root.find("h:id", ns).attrib.update({"root": DOCUMENT_ROOT, "extension": f"doc-{serial}"})
    set_id = root.find("h:setId", ns)
    if set_id is not None:
        set_id.attrib.update({"root": DOCUMENT_ROOT, "extension": f"set-{serial}"})
    # Its encounter and prescription lines are its own too: each depositor updates only what it
    # deposited, so two senders of the same ids would collide (docs/ACCESS-RULES.md).
    for element in root.iterfind(".//h:encompassingEncounter/h:id", ns):
        element.set("extension", f"enc-{serial}")
    for index, element in enumerate(root.iterfind(".//h:substanceAdministration/h:id", ns)):
        element.set("extension", f"line-{serial}-{index}")
    text = etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
    texts = root.findall(".//h:section/h:text", ns)
    if len(text) < min_size and texts:
        # Grow the longest narrative block: a longer letter of the same structure.
        longest = max(texts, key=lambda t: len(etree.tostring(t)))
        paragraphs = [p for p in longest if etree.QName(p).localname == "paragraph"]

        def grow(rounds: int) -> None:
            for _ in range(rounds):
                for paragraph in paragraphs:
                    copy = etree.fromstring(etree.tostring(paragraph), PARSER)
                    for element in copy.iter():
                        element.attrib.pop("ID", None)  # XML IDs must stay unique
                    longest.append(copy)

        grow(1)
        grown = etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
        per_round = max(len(grown) - len(text), 1)
        grow(max(-(-(min_size - len(grown)) // per_round), 0))
        text = etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
    return text


def mdm_t02(serial: str, cda: bytes) -> bytes:
    """An MDM^T02 (CI-SIS CDA over HL7 v2) carrying `cda` base64-encoded in OBX-5; TXA-12 names the
    CDA's own id (`discharge_letter(serial)`: root DOCUMENT_ROOT, extension doc-<serial>)."""
    now = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    document_id = f"doc-{serial}^CHBENCH^{DOCUMENT_ROOT}^ISO"
    segments = [
        f"MSH|^~\\&|BENCH|CHBENCH|FHIRSRV|DMP|{now}||MDM^T02^MDM_T02|B{serial}|P|2.6|||||FRA|UNICODE UTF-8|||2.1^CISIS_CDA_HL7_V2",
        f"EVN||{now}",
        "PID|||262077512345678^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS~IPP000417^^^CHBENCH&1.2.250.1.999.1.1.1&ISO^PI"
        "||FIXTURE-DUPONT^CAMILLE^CAMILLE ANNE^^^^L||19620714|F",
        "PV1|1|I|MED^101^1^CHBENCH",
        "ORC|NW|",
        "OBR|1|||11490-0^Lettre de liaison à la sortie^LN",
        f"TXA|1|11490-0|TEXT|{now}||||||||{document_id}|||||AU",
        "OBX|1|ED|11490-0^Lettre de liaison à la sortie^LN||^TEXT^XML^Base64^" + base64.b64encode(cda).decode("ascii") + "||||||F",
    ]
    return "\r".join(segments).encode("utf-8") + b"\r"
