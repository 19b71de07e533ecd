"""Parse untrusted XML without letting it reach the network, the disk or unbounded memory.

A document type declaration is refused before libxml2 sees the document: a clinical document never
needs one, and it is what XXE and billion-laughs attacks are made of (libxml2 would otherwise still
try to fetch an external DTD, or expand entities far enough to measure their amplification).
The parser itself is configured to substitute no entity and load no DTD, as a second barrier.
"""

import codecs
import re
from functools import cache

from lxml import etree

from cda.errors import CdaError

DEFAULT_MAX_BYTES = 30 * 1024 * 1024
DEFAULT_MAX_DEPTH = 100

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    huge_tree=False,
    dtd_validation=False,
    collect_ids=False,
    remove_comments=True,
    remove_pis=True,
)


class _NothingExternal(etree.Resolver):
    """Every file, DTD or entity a document names resolves to nothing. The options above are not
    enough: with collect_ids=False, libxml2 2.14 (lxml 6.0) still opens the local file named by an
    external DTD subset or a parameter entity (tests/cda/test_safe_xml.py)."""

    def resolve(self, system_url: str, public_id: str, context: object) -> object:
        return self.resolve_string("", context)


_PARSER.resolvers.add(_NothingExternal())

# Whitespace, processing instructions and comments may precede a DOCTYPE in the prolog. The
# possessive loop never backtracks, so a hostile prolog costs one linear scan.
_PROLOG_DOCTYPE = r"^(?:\s+|<\?.*?\?>|<!--.*?-->)*+<!DOCTYPE"
_DOCTYPE_BYTES = re.compile(b"^(?:\xef\xbb\xbf)?" + _PROLOG_DOCTYPE[1:].encode(), re.S)
_DOCTYPE_TEXT = re.compile("^\ufeff?" + _PROLOG_DOCTYPE[1:], re.S)
# Encodings that are not ASCII-compatible, recognised by their first bytes (XML 1.0, appendix F).
_WIDE_ENCODINGS = (
    (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF32_LE, "utf-32"),
    (b"\x00\x00\x00<", "utf-32-be"), (b"<\x00\x00\x00", "utf-32-le"),
    (codecs.BOM_UTF16_BE, "utf-16"), (codecs.BOM_UTF16_LE, "utf-16"),
    (b"\x00<\x00?", "utf-16-be"), (b"<\x00?\x00", "utf-16-le"),
)


def _declares_doctype(data: bytes) -> bool:
    for signature, encoding in _WIDE_ENCODINGS:
        if data.startswith(signature):
            return bool(_DOCTYPE_TEXT.match(data.decode(encoding, errors="replace")))
    return bool(_DOCTYPE_BYTES.match(data))


@cache
def _deeper_than(max_depth: int) -> etree.XPath:
    # One location step per level: libxml2 walks the tree in C, far cheaper than a Python loop.
    return etree.XPath("boolean(/" + "/".join(["*"] * (max_depth + 1)) + ")")


def parse_xml(
    data: bytes, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH
) -> etree._Element:
    """Return the root element of `data`, or raise CdaError (too-large, invalid-xml, forbidden-xml)."""
    if len(data) > max_bytes:
        raise CdaError("too-large", f"document is {len(data)} bytes, the limit is {max_bytes}")
    if _declares_doctype(data):
        raise CdaError(
            "forbidden-xml", "document type declarations and entities are not accepted"
        )
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise CdaError("invalid-xml", f"not well-formed XML: {exc}") from None
    if root is None:
        raise CdaError("invalid-xml", "empty document")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise CdaError(
            "forbidden-xml", "document type declarations and entities are not accepted"
        )
    if _deeper_than(max_depth)(root):
        raise CdaError("forbidden-xml", f"elements are nested deeper than {max_depth} levels")
    return root
