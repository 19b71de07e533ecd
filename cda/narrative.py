"""The narrative block of a section: the human-readable text that entries point into with
`<reference value="#id"/>` (drug names, free-text dosage, instructions)."""

import re

from lxml import etree

from cda.datatypes import V3, first

_BR = f"{{{V3}}}br"
_SPACES = re.compile(r"\s+")


def _flatten(node: etree._Element, parts: list[str]) -> None:
    if node.text:
        parts.append(node.text)
    for child in node:
        # A line break separates words that the markup puts on different lines.
        if child.tag == _BR:
            parts.append(" ")
        else:
            _flatten(child, parts)
        if child.tail:
            parts.append(child.tail)


def _narrative_text(node: etree._Element) -> str | None:
    parts: list[str] = []
    _flatten(node, parts)
    return _SPACES.sub(" ", "".join(parts)).strip() or None


def section_narrative(section: etree._Element) -> dict[str, str]:
    """Texts of the section narrative by their ID, the targets of `<reference value="#id"/>`."""
    block = first(section, "text")
    if block is None:
        return {}
    return {
        node.get("ID"): value
        for node in block.iterdescendants()
        if node.get("ID") and (value := _narrative_text(node))
    }
