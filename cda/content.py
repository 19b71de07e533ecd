"""The stored bytes: the CDA itself as a Binary, plus the embedded file of a level-1 CDA, and the
DocumentReference.content items that point at them."""

import base64
import binascii
import hashlib
from dataclasses import dataclass

from lxml import etree

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


def _format_coding(entry: dict) -> dict:
    systems = table("template_to_format")["systems"]
    return {"system": systems[entry["system"]], "code": entry["code"], "display": entry["display"]}


def document_format(
    template_roots: list[str], embedded: EmbeddedFile | None, warnings: list[str]
) -> dict | None:
    """content.format from the model templateId (or, for level 1, from the embedded media type)."""
    formats = table("template_to_format")
    if embedded is not None and formats["unstructured_template"] in template_roots:
        entry = formats["media_types"].get(embedded.media_type)
        if entry is None:
            warnings.append(f"nonXMLBody: no format code for media type {embedded.media_type!r}")
            return None
        return _format_coding(entry)
    # CI-SIS documents list the generic templates first and the model template last.
    for root in reversed(template_roots):
        if entry := formats["templates"].get(root):
            return _format_coding(entry)
    roots = ", ".join(template_roots) or "(none)"
    warnings.append(f"unknown document template(s) {roots}: no format code")
    return None


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


def stored_content(
    root: etree._Element, data: bytes, key: str, created: str | None, warnings: list[str]
) -> tuple[list[dict], list[dict]]:
    """The Binary entries (the CDA, plus the embedded file of a level-1 CDA) and the
    DocumentReference.content items pointing at them."""
    embedded = embedded_file(root, warnings)
    templates = [t.get("root") for t in every(root, "templateId") if t.get("root")]
    language_code = first(root, "languageCode")
    language = language_code.get("code") if language_code is not None else None
    title = text(first(root, "title"))
    content_type = table("template_to_format")["content_type"]
    cda_id = resource_id(key)
    entries = [binary_entry(full_url(key, "Binary"), cda_id, content_type, data)]
    cda_content: dict = {
        "attachment": attachment(cda_id, content_type, data, language, title, created)
    }
    if fmt := document_format(templates, embedded, warnings):
        cda_content["format"] = fmt
    content = [cda_content]
    if embedded is not None:
        file_id = resource_id(key, "file")
        media_type, payload = embedded.media_type, embedded.data
        entries.append(binary_entry(full_url(key, "Binary", "file"), file_id, media_type, payload))
        # The CDA's format code describes the wrapper; the bare file is described by its MIME type.
        content.append({
            "attachment": attachment(file_id, media_type, payload, language, title, created),
            "format": _format_coding(table("template_to_format")["embedded_file"]),
        })
    return entries, content
