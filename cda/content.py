"""The stored bytes: the CDA itself as a Binary, plus the embedded file of a level-1 CDA, and the
DocumentReference.content that points at them."""

import base64
import binascii
import hashlib
from dataclasses import dataclass

from lxml import etree

from cda import correspondence
from cda.datatypes import every, first, text
from cda.ids import full_url, resource_id
from cda.mappings import table


@dataclass(frozen=True)
class EmbeddedFile:
    """nonXMLBody/text of a level-1 CDA, decoded."""

    media_type: str
    data: bytes


def embedded_file(root: etree._Element, warnings: list[str]) -> EmbeddedFile | None:
    body = first(root, "component/nonXMLBody/text")
    if body is None:
        return None
    media_type = body.get("mediaType") or "text/plain"
    payload = "".join(body.itertext())
    if body.get("representation") == "B64":
        try:
            # a2b_base64 skips the line breaks and indentation that wrap base64 in XML.
            data = binascii.a2b_base64(payload)
        except binascii.Error:
            warnings.append("nonXMLBody: base64 content cannot be decoded, not stored separately")
            return None
    else:
        data = payload.encode("utf-8")
    return EmbeddedFile(media_type=media_type, data=data)


def document_format(
    template_roots: list[str], embedded: EmbeddedFile | None, warnings: list[str]
) -> dict | None:
    """content.format: for a level-1 CDA from the media type of its body (ASS_A12), else from its
    model templateId (ASS_A11)."""
    if embedded is not None:
        found = correspondence.body_format(embedded.media_type)
        if found is None:
            used = correspondence.media_type_to_format()
            warnings.append(f"nonXMLBody media type {embedded.media_type!r} is not in {used.name} "
                            f"version {used.version}: no format code")
        return found
    found = correspondence.model_format(template_roots)
    if found is None:
        used = correspondence.model_to_format()
        roots = ", ".join(template_roots) or "(none)"
        warnings.append(f"no document template ({roots}) is in {used.name} version {used.version}: no format code")
    return found


def binary_entry(full_url: str, resource_id: str, content_type: str, data: bytes) -> dict:
    """PUT Binary/<id>: the id is derived from the document, so a replay rewrites identical bytes."""
    return {
        "fullUrl": full_url,
        "resource": {
            "resourceType": "Binary",
            "id": resource_id,
            "contentType": content_type,
            "data": base64.b64encode(data).decode("ascii"),
        },
        "request": {"method": "PUT", "url": f"Binary/{resource_id}"},
    }


def attachment(
    resource_id: str, content_type: str, data: bytes, language: str | None, title: str | None,
    creation: str | None,
) -> dict:
    result: dict = {"contentType": content_type}
    if language:
        result["language"] = language
    result.update(
        url=f"Binary/{resource_id}",
        size=len(data),
        hash=base64.b64encode(hashlib.sha1(data).digest()).decode("ascii"),
    )
    if title:
        result["title"] = title
    if creation:
        result["creation"] = creation
    return result


RENDERING = "https://fhir-server.example.org/StructureDefinition/document-rendering"


def stored_content(
    root: etree._Element, data: bytes, key: str, created: str | None, warnings: list[str]
) -> tuple[list[dict], dict, dict[str, bytes]]:
    """The Binary entries and the one DocumentReference.content: the CDA itself, with the file a
    level-1 CDA embeds kept as its own Binary and named by the rendering extension (IHE MHD allows
    one content; the PDF is how the CDA renders, not a second document). Then the Binaries' bytes
    by fullUrl, which the server stores without decoding their `data` again."""
    embedded = embedded_file(root, warnings)
    templates = [t.get("root") for t in every(root, "templateId") if t.get("root")]
    language_code = first(root, "languageCode")
    language = language_code.get("code") if language_code is not None else None
    title = text(first(root, "title"))
    content_type = table("document_format")["content_type"]
    cda_id = resource_id(key)
    entries = [binary_entry(full_url(key, "Binary"), cda_id, content_type, data)]
    contents = {full_url(key, "Binary"): data}
    content: dict = {"attachment": attachment(cda_id, content_type, data, language, title, created)}
    if embedded is not None:
        file_id = resource_id(key, "file")
        entries.append(binary_entry(full_url(key, "Binary", "file"), file_id, embedded.media_type, embedded.data))
        contents[full_url(key, "Binary", "file")] = embedded.data
        content["extension"] = [{
            "url": RENDERING,
            "valueAttachment": attachment(file_id, embedded.media_type, embedded.data, language, title, created),
        }]
    if fmt := document_format(templates, embedded, warnings):
        content["format"] = fmt
    return entries, content, contents
