"""What the patient writes into their own record (Code de la santé publique R.1111-42 c) and 2°;
issue 23; docs/RECORD-CONTENTS.md), as hooks on the one access path. The rules are data in
`profiles/patient-entries.json` and `profiles/ValueSet/ValueSet-patient-document-type.json`.

- before write: on a patient's create (a resource without id), the server fills in the elements
  that say the patient entered it when they are left out (`performer`, `recorder`, `author`...,
  and the class of a document), so what is indexed and stored already says so.
- record write: a version the patient writes of their own entries must name them in those
  elements (422 otherwise); a document they add must be PDF, JPEG or PNG, under the configured
  size, of a patient document type; what a patient deposited, only the patient (and the
  platform) changes or deletes (403); only the platform writes who legally represents a person.
- write rule: every version a patient writes of their own entries gets a Provenance naming the
  patient (or their legal representative, on their behalf) as author, in the same transaction.
"""

from __future__ import annotations

import base64
import binascii
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from fhir_server.access.record_keys import depositor
from fhir_server.access.records import REPRESENTATIVE_ROLES, representative_link
from fhir_server.access.rules import unrestricted
from fhir_server.errors import FhirError
from fhir_server.file_signatures import media_type
from fhir_server.messaging import policy as messaging
from fhir_server.security.callers import Caller
from fhir_server.storage.documents import Stored
from fhir_server.storage.hooks import RecordWrite, RecordWriteCheck

if TYPE_CHECKING:
    from fhir_server.storage.repository import Repository, Session, WriteRule

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
ENTRIES_FILE = PROFILES / "patient-entries.json"
DOCUMENT_TYPES_FILE = PROFILES / "ValueSet" / "ValueSet-patient-document-type.json"
# HL7 v3 DataOperation and the R4 provenance-participant-type: what the Provenance says was done, by whom.
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


@cache
def entries() -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(ENTRIES_FILE.read_bytes())
    return data


@cache
def document_types() -> frozenset[tuple[str, str]]:
    value_set = orjson.loads(DOCUMENT_TYPES_FILE.read_bytes())
    return frozenset((include["system"], concept["code"]) for include in value_set["compose"]["include"]
                     for concept in include.get("concept") or [])


@cache
def patient_owned_types() -> frozenset[str]:
    """What a patient deposits and only they change: their entries, the Provenance of each, the
    bytes of their documents, their trusted person and contacts."""
    return frozenset({*entries()["sources"], "Provenance", "Binary", "RelatedPerson"})


@cache
def platform_only_relationships() -> frozenset[str]:
    """The relationships of a legal representative (who then opens the represented person's
    record) or of a guardian."""
    return REPRESENTATIVE_ROLES | frozenset(entries()["guardianshipRelationships"])


def _invalid(message: str, where: str) -> FhirError:
    return FhirError(422, "business-rule", message, [where])


def _fill(resource: dict[str, Any], patient: str) -> None:
    rtype = resource["resourceType"]
    for rule in entries()["sources"].get(rtype, []):
        element = rule["element"]
        if resource.get(element) not in (None, []):
            continue
        if rule.get("reference") == "one":
            resource[element] = {"reference": patient}
        elif rule.get("reference") == "many":
            resource[element] = [{"reference": patient}]
        elif "value" in rule:
            resource[element] = rule["value"]
    if rtype == "DocumentReference" and not resource.get("category"):
        resource["category"] = [{"coding": [entries()["documents"]["class"]]}]


def before_write(caller: Caller, resource: dict[str, Any]) -> None:
    """A patient's create names them where the shape says the server does (docs/RECORD-CONTENTS.md).
    An update (a resource with its id) is left as sent: it may be the patient masking what a
    professional wrote, which the record-write rules judge."""
    if caller.kind != "patient" or caller.record_patient is None or "id" in resource:
        return
    if resource.get("resourceType") in entries()["sources"]:
        _fill(resource, f"Patient/{caller.record_patient}")


def _references(value: Any) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    return [item.get("reference") if isinstance(item, dict) else None for item in items]


def _check_sources(rtype: str, resource: dict[str, Any], patient: str) -> None:
    for rule in entries()["sources"].get(rtype, []):
        element = rule["element"]
        value = resource.get(element)
        where = f"{rtype}.{element}"
        if "reference" in rule:
            if value in (None, []) or any(r != patient for r in _references(value)):
                raise _invalid(f"What you enter into your record names you as its source: {where} must be "
                               f"{patient}", where)
        elif "value" in rule:
            if value != rule["value"]:
                raise _invalid(f"What you enter into your record is reported by you: {where} must be "
                               f"{orjson.dumps(rule['value']).decode()}", where)
        elif "codes" in rule and value is not None:
            allowed = rule["codes"]
            codings = [c for c in (value.get("coding") or [] if isinstance(value, dict) else []) if isinstance(c, dict)]
            if not any(c.get("system") == allowed["system"] and c.get("code") in allowed["codes"] for c in codings):
                raise _invalid(f"{where} takes {', '.join(allowed['codes'])} of {allowed['system']} for what you "
                               "enter into your record", where)


def _codings(concepts: Any) -> list[dict[str, Any]]:
    items = concepts if isinstance(concepts, list) else [concepts]
    return [c for concept in items if isinstance(concept, dict) for c in concept.get("coding") or [] if isinstance(c, dict)]


def _check_content_type(content_type: Any, where: str) -> None:
    allowed = entries()["documents"]["contentTypes"]
    if media_type(content_type) not in allowed:
        raise _invalid(f"A document you add is {', '.join(allowed)}; {where} is "
                       f"'{content_type if isinstance(content_type, str) else ''}'", where)


def _too_large(size: int, limit: int, where: str) -> FhirError:
    return FhirError(413, "too-costly", f"A document you add holds at most {limit} bytes; {where} has {size}", [where])


def _check_document(resource: dict[str, Any], limit: int) -> None:
    if not any((c.get("system"), c.get("code")) in document_types() for c in _codings(resource.get("type"))):
        raise _invalid("A document you add has a type of the DMP's patient documents (TRE_A05 DOCPAT01 to DOCPAT09, "
                       "or advance directives): see ValueSet " + entries()["documents"]["typeValueSet"],
                       "DocumentReference.type")
    wanted = entries()["documents"]["class"]
    if not any(c.get("system") == wanted["system"] and c.get("code") == wanted["code"]
               for c in _codings(resource.get("category"))):
        raise _invalid(f"A document you add is in class {wanted['code']} '{wanted['display']}' of {wanted['system']}",
                       "DocumentReference.category")
    for index, content in enumerate(resource.get("content") or []):
        attachment = (content or {}).get("attachment") or {} if isinstance(content, dict) else {}
        where = f"DocumentReference.content[{index}].attachment"
        _check_content_type(attachment.get("contentType"), f"{where}.contentType")
        size = attachment.get("size")
        if isinstance(size, int) and size > limit:
            raise _too_large(size, limit, f"{where}.size")
        data = attachment.get("data")
        if isinstance(data, str):
            try:
                decoded = len(base64.b64decode(data))
            except (binascii.Error, ValueError):
                continue  # not base64: validation answers for it
            if decoded > limit:
                raise _too_large(decoded, limit, f"{where}.data")


def _relationship_codes(resource: dict[str, Any]) -> set[str]:
    return {c.get("code") for c in _codings(resource.get("relationship")) if isinstance(c.get("code"), str)}


async def _own_context(check: RecordWriteCheck) -> None:
    """Bytes a patient sends are seen as the resource their securityContext names (record keys):
    one of theirs, never a professional's document, which they may mask but not change."""
    reference = (check.resource or {}).get("securityContext", {}).get("reference")
    if not isinstance(reference, str) or reference.count("/") != 1:
        return
    resource_type, resource_id = reference.split("/")
    if resource_type not in check.reader.repository.resource_types:
        return
    target = await check.reader.repository.current(resource_type, resource_id, check.session)
    # A thread's attachments are Binaries of its header (fhir_server.messaging.threads), whoever opened it.
    if target is not None and not target.deleted and target.keys.get("dep") != depositor(check.caller) \
            and not (target.resource_type == "Communication" and messaging.kind(target.resource) == "thread"):
        raise FhirError(403, "forbidden", "A patient may mask what someone else deposited in their record, not add "
                        "bytes to it")


def record_write(limit: int) -> RecordWrite:
    async def check(check: RecordWriteCheck) -> None:
        caller = check.caller
        if unrestricted(caller):
            return
        # Representatives open the represented person's record (records.represents): written, changed
        # into one, or deleted.
        written = check.resource if check.resource is not None else check.current.resource if check.current else None
        if check.resource_type == "RelatedPerson" and written is not None \
                and _relationship_codes(written) & platform_only_relationships():
            raise FhirError(403, "forbidden", "Legal representatives and guardians are recorded by the platform, "
                            "from the decision that appoints them; you may record your trusted person and contacts")
        deposited = check.current.keys.get("dep", "") if check.current is not None else ""
        if caller.kind != "patient":
            # Entries, their Provenance and a document's bytes; not what the patient and a
            # professional write in turn (an appointment they request, a message thread).
            if deposited.startswith("pt:") and check.resource_type in patient_owned_types():
                raise FhirError(403, "forbidden", "What the patient entered into their record, only the patient "
                                "changes or deletes")
            return
        own = check.current is None or check.current.deleted or deposited == depositor(caller)
        if check.resource is None or not own or check.patient is None:
            return
        if check.resource_type == "Binary":
            await _own_context(check)
        if check.resource_type in entries()["sources"]:
            _check_sources(check.resource_type, check.resource, f"Patient/{check.patient}")
        if check.resource_type == "DocumentReference":
            _check_document(check.resource, limit)
        elif check.resource_type == "Binary":
            _check_content_type(check.resource.get("contentType"), "Binary.contentType")
    return check


def binary_size(limit: int) -> WriteRule:
    """The bytes of a patient's Binary are known once stored (raw or base64): over the limit, the
    write's transaction is abandoned."""
    async def rule(repository: Repository, session: Session, caller: Caller, stored: Stored) -> None:
        if caller.kind != "patient" or stored.deleted or stored.blob is None:
            return
        size = stored.blob.get("size")
        if isinstance(size, int) and size > limit:
            raise _too_large(size, limit, "Binary.data")
    return rule


async def provenance(repository: Repository, session: Session, caller: Caller, stored: Stored) -> None:
    """The Provenance of a version the patient wrote of their own entries (or their legal
    representative, then named as the agent on the patient's behalf). Its targets are the version
    and the Patient: R4 puts a Provenance in a patient's compartment, hence in their record and
    under its access rules, only through a target that is the Patient."""
    if caller.kind != "patient" or stored.deleted or stored.patient is None \
            or stored.keys.get("dep") != depositor(caller):
        return
    patient = f"Patient/{stored.patient}"
    agent: dict[str, Any] = {"type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "author"}]},
                             "who": {"reference": patient}}
    if caller.patient is not None:
        # A launch context: the caller may be the patient's legal representative, who enters it on
        # their behalf.
        link = await representative_link(repository.reader(None, session), caller, stored.patient)
        if link is not None:
            agent = {**agent, "who": {"reference": f"RelatedPerson/{link}"}, "onBehalfOf": {"reference": patient}}
    resource = {
        "resourceType": "Provenance",
        "target": [{"reference": f"{stored.resource_type}/{stored.id}/_history/{stored.version}"},
                   {"reference": patient}],
        "recorded": stored.last_updated,
        "activity": {"coding": [{"system": DATA_OPERATION, "code": "CREATE" if stored.version == 1 else "UPDATE"}]},
        "agent": [agent],
    }
    await repository.create_in(session, caller, repository.prepare(caller, resource, "Provenance"))


async def register(repository: Repository, document_max_bytes: int) -> None:
    # Provenances are written inside the transactions of other types, where no index can be made
    # (Repository.ready): theirs are made at start-up, so reading a record's stays an indexed query.
    await repository.ready(["Provenance"])
    hooks = repository.hooks
    # Filled in before validation (registered first), so what is validated is what is stored.
    hooks.before_writes.insert(0, before_write)
    hooks.record_writes.append(record_write(document_max_bytes))
    for resource_type in entries()["sources"]:
        repository.write_rules.setdefault(resource_type, []).append(provenance)
    repository.write_rules.setdefault("Binary", []).append(binary_size(document_max_bytes))
