"""The identity of a shared document: its masterIdentifier, computed the same way on every channel.

A CDA document is identified by `ClinicalDocument/id` (an HL7 v3 II: root OID or UUID, optional
extension); without a CDA, HL7 v2 states the same identity in TXA-12. Whatever the channel
(POST /ingest/cda, HL7 v2 over MLLP or HTTP, ITI-65), the same document must give the same
masterIdentifier, so a resend is recognised instead of becoming a second current document.

The form follows the ANS mapping of II to Identifier (IG "Mapping CDA - FHIR",
https://interop.esante.gouv.fr/ig/fhir/mappingcdafhir, StructureMap CdaToFHIRTypes, group II):

- root and extension: system `urn:oid:<root>`, value `<extension>`;
- a root alone: system `urn:ietf:rfc:3986`, value `urn:oid:<root>` (`urn:uuid:<root>` for a UUID),
  the form of the PDSm examples (DocumentReference `exemple-pdsm-documentreference`,
  masterIdentifier system `urn:ietf:rfc:3986`, value a URN) and of IHE MHD's
  (`ex-DocumentReferenceMinimal`: system `urn:ietf:rfc:3986`, value `urn:oid:...`).
"""

from __future__ import annotations

from typing import Any

from cda.datatypes import ii_identifier, is_oid, is_uuid

RFC3986 = "urn:ietf:rfc:3986"


def master_identifier(root: str, extension: str | None = None) -> dict[str, str]:
    """The masterIdentifier of the document whose unique id is `root` (+ `extension`)."""
    return ii_identifier(root, extension)


def from_entity_identifier(entity: str, universal: str = "") -> dict[str, str] | None:
    """TXA-12 (EI: entity id, namespace id, universal id, its type) as the same identity.

    Senders state a CDA's id either as the whole OID in the entity id (with nothing or their own
    root as universal id: the ANS MDM examples send `<root>^<namespace>`), or as the CDA's
    extension in the entity id under the CDA's root as universal id. An entity id that is a UUID,
    or an OID alone or under the universal id, is the whole id; otherwise the pair is root +
    extension. None when neither is a global id (the caller keeps the local identifier).
    """
    if not entity:
        return None
    if is_uuid(entity):
        return master_identifier(entity)
    universal_is_global = bool(universal) and (is_oid(universal) or is_uuid(universal))
    if is_oid(entity) and (not universal_is_global or entity.startswith(universal + ".")):
        return master_identifier(entity)
    if universal_is_global:
        return master_identifier(universal, entity)
    return None


def normalized(identifier: dict[str, Any]) -> dict[str, Any]:
    """A masterIdentifier a sender stated, in the form above when it names an OID or UUID id in
    another accepted form (a bare OID, `urn:oid:` without the RFC 3986 system, XDS `root^extension`)."""
    system, value = identifier.get("system"), identifier.get("value")
    if not isinstance(value, str) or not value or system not in (None, RFC3986):
        return identifier
    root, _, extension = value.removeprefix("urn:oid:").removeprefix("urn:uuid:").partition("^")
    if is_oid(root) or is_uuid(root):
        return {**identifier, **master_identifier(root, extension or None)}
    return identifier
