"""Parse untrusted XML without letting it reach the network, the disk or unbounded memory.

Entities are never substituted and no DTD is loaded, so an XXE or billion-laughs document reads
nothing; any document type declaration is then refused outright because a clinical document never
needs one and its presence is the signature of those attacks.
"""

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
