"""Sending facilities: the organisations that push documents, with what their documents may lack.

Each one is an Organization of the record (DECISIONS, "Facilities"), identified by its FINESS as
national structure id (idNat_Struct, `urn:oid:1.2.250.1.71.4.2.2`, "1" + FINESS: the id CI-SIS
documents give their custodian), by the MSH-4 values its HL7 v2 senders use and by any other
custodian id of its CDA documents. It carries the facilityType (JDV_J02) and practiceSetting
(JDV_J04) its documents default to. The adapters look it up by those ids and fill what a document
lacks; a document without CDA also gets it as custodian and, when no person is named, as author.

`fhir-server facilities add` writes it: through the running server (`--server URL`), or into the
store of `--data-dir` when the server is not running, never around a running server.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cda.datatypes import ii_identifier
from fhir_server.config import PROJECT_ROOT, Settings
from fhir_server.errors import FhirError
from fhir_server.security.callers import PLATFORM, Caller
from fhir_server.storage.embedded import StoreUnavailable

if TYPE_CHECKING:
    from fhir_server.storage.documents import Stored
    from fhir_server.storage.repository import Repository

IDNAT_STRUCT = "urn:oid:1.2.250.1.71.4.2.2"
ROLE = {"system": "https://fhir-server.example.org/CodeSystem/organization-role", "code": "sending-facility"}
FACILITY_TYPE = "https://fhir-server.example.org/StructureDefinition/default-facility-type"
PRACTICE_SETTING = "https://fhir-server.example.org/StructureDefinition/default-practice-setting"
# The value sets the PDSm metadata take their codes from (XDS healthcareFacilityTypeCode, practiceSettingCode).
_FACILITY_TYPES = "ValueSet-JDV-J02-XdsHealthcareFacilityTypeCode-CISIS.json"
_PRACTICE_SETTINGS = "ValueSet-JDV-J04-XdsPracticeSettingCode-CISIS.json"

Search = Callable[[str, str], Awaitable[list[dict[str, Any]]]]


@cache
def _msh4_system() -> str:
    # Read as a file: the HL7 v2 package imports this module, so it cannot import that one back.
    defaults = json.loads((PROJECT_ROOT / "mappings" / "hl7v2" / "defaults.json").read_text(encoding="utf-8"))
    return str(defaults["sendingFacilitySystem"])


def sending_facility_identifier(msh4: str) -> dict[str, str]:
    """The identifier an HL7 v2 sender's MSH-4 (its namespace id or universal id) names a facility by."""
    return {"system": _msh4_system(), "value": msh4}


@dataclass(frozen=True)
class Facility:
    reference: str
    facility_type: dict[str, Any] | None
    practice_setting: dict[str, Any] | None
    finess: str | None = None

    @classmethod
    def of(cls, organization: dict[str, Any]) -> Facility:
        defaults = {e.get("url"): e.get("valueCodeableConcept") for e in organization.get("extension", [])}
        finess = next((i["value"][1:] for i in organization.get("identifier", [])
                       if i.get("system") == IDNAT_STRUCT and str(i.get("value", "")).startswith("1")), None)
        return cls(f"Organization/{organization['id']}", defaults.get(FACILITY_TYPE), defaults.get(PRACTICE_SETTING),
                   finess)


def _token(identifier: dict[str, Any]) -> str:
    return f"{identifier.get('system', '')}|{identifier['value']}"


# A facility found is used again for this long without asking the store (issue 18: its look-up was
# two round trips and 8 % of the server's CPU per ingested letter). A registration added or changed
# (`fhir-server facilities add`) is used at once by the process that wrote it and by the others
# (`serve --workers N`, other servers on the store) within this time.
REMEMBERED_SECONDS = 10.0
MOST_REMEMBERED = 4096


class Remembered:
    """What one server process found lately for each identifier token: a facility, or none (a
    document naming no registered facility is completed without one, or refused)."""

    def __init__(self) -> None:
        self._found: dict[str, tuple[float, Facility | None]] = {}
        # Bumped by each Organization write of this process: a look-up begun before it is not kept.
        self.generation = 0

    def get(self, token: str) -> tuple[bool, Facility | None]:
        """(whether the answer is remembered, the facility or None)."""
        hit = self._found.get(token)
        if hit is None or time.monotonic() - hit[0] >= REMEMBERED_SECONDS:
            return False, None
        return True, hit[1]

    def put(self, token: str, facility: Facility | None, generation: int) -> None:
        if generation != self.generation:
            return
        if len(self._found) >= MOST_REMEMBERED:
            # Tokens come from documents: what they name cannot grow the process without bound.
            self._found.clear()
        self._found[token] = (time.monotonic(), facility)

    def forget(self) -> None:
        """An Organization is written: a registration changed here is used from the next document on."""
        self.generation += 1
        self._found.clear()


async def forget_on_write(repository: Repository, session: Any, caller: Caller, stored: Stored) -> None:
    """A write rule of Organization: a registration written by this process is used from its next document on."""
    repository.facilities.forget()


def register_write_rules(repository: Repository) -> None:
    repository.write_rules.setdefault("Organization", []).append(forget_on_write)


async def find(search: Search, identifiers: list[dict[str, Any]], remembered: Remembered | None = None) -> Facility | None:
    """The sending facility one of `identifiers` names (the first that names one)."""
    for identifier in identifiers:
        if not identifier.get("value"):
            continue
        token = _token(identifier)
        if remembered is not None:
            known, facility = remembered.get(token)
            if known:
                if facility is not None:
                    return facility
                continue
        generation = remembered.generation if remembered is not None else 0
        facility = next((Facility.of(o) for o in await search("Organization", token)
                         if ROLE in (o.get("meta") or {}).get("tag", [])), None)
        if remembered is not None:
            remembered.put(token, facility, generation)
        if facility is not None:
            return facility
    return None


def custodian_identifiers(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The ids of the custodian a DocumentReference names (contained, as the CDA converter writes it)."""
    reference = (document.get("custodian") or {}).get("reference", "")
    for resource in document.get("contained", []):
        if reference == f"#{resource.get('id')}":
            return list(resource.get("identifier", []))
    return []


# What `apply_defaults` fills, as the PDSm check names it: a document lacking one of these is
# complete once its sending facility is configured with it.
SUPPLIED = ("DocumentReference.context.facilityType", "DocumentReference.context.practiceSetting",
            "DocumentReference.custodian", "DocumentReference.author")


def apply_defaults(document: dict[str, Any], facility: Facility) -> None:
    """Fill what the document does not state from its sending facility's configuration."""
    context = document.setdefault("context", {})
    # Copies: a remembered facility's codes go into many documents, and a document may be changed.
    if facility.facility_type and "facilityType" not in context:
        context["facilityType"] = copy.deepcopy(facility.facility_type)
    if facility.practice_setting and "practiceSetting" not in context:
        context["practiceSetting"] = copy.deepcopy(facility.practice_setting)
    document.setdefault("custodian", {"reference": facility.reference})
    if not document.get("author"):
        # XDS authorInstitution: the document was written there when the sender names no person.
        document["author"] = [{"reference": facility.reference}]


# ---------------------------------------------------------------------------------- the CLI


@cache
def _value_set(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Settings().profiles_dir / "ValueSet" / name).read_text(encoding="utf-8"))
    return data


def coded(value_set: str, code: str) -> dict[str, Any]:
    """A code of `value_set` as a CodeableConcept with its system and display; ValueError otherwise."""
    data = _value_set(value_set)
    for include in data["compose"]["include"]:
        for concept in include.get("concept", []):
            if concept["code"] == code:
                coding = {"system": include["system"], "code": code}
                if concept.get("display"):
                    coding["display"] = concept["display"]
                return {"coding": [coding]}
    raise ValueError(f"{code!r} is not a code of {data.get('title') or data['url']}")


def _custodian_id(text: str) -> dict[str, Any]:
    """`root` or `root^extension`, as a CDA custodian id (`<id root=.. extension=..>`)."""
    root, _, extension = text.partition("^")
    if not root:
        raise ValueError(f"custodian id {text!r} has no root")
    return ii_identifier(root, extension or None)


def organization(args: argparse.Namespace) -> dict[str, Any]:
    finess = args.finess.strip()
    if len(finess) != 9 or not finess.isalnum():
        raise ValueError(f"FINESS {finess!r} is not 9 characters")
    identifiers = [{"system": IDNAT_STRUCT, "value": "1" + finess}]
    for value in args.msh4:
        identifiers.append(sending_facility_identifier(value))
    for value in args.custodian_id:
        identifier = _custodian_id(value)
        if identifier not in identifiers:
            identifiers.append(identifier)
    resource: dict[str, Any] = {"resourceType": "Organization", "meta": {"tag": [ROLE]}}
    extensions = []
    if args.facility_type:
        extensions.append({"url": FACILITY_TYPE, "valueCodeableConcept": coded(_FACILITY_TYPES, args.facility_type)})
    if args.practice_setting:
        extensions.append({"url": PRACTICE_SETTING, "valueCodeableConcept": coded(_PRACTICE_SETTINGS, args.practice_setting)})
    if extensions:
        resource["extension"] = extensions
    resource.update(identifier=identifiers, active=True, name=args.name)
    return resource


def add_arguments(commands: Any) -> None:
    facilities = commands.add_parser("facilities", help="sending facilities and the defaults of their documents")
    actions = facilities.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add or update a sending facility")
    add.add_argument("--data-dir", type=Path, default=Path("./data"),
                     help="the server's data dir, whose store is written when --server is not given")
    add.add_argument("--server", help="base URL of the running server (http://host:port): write through it")
    add.add_argument("--token", default=os.environ.get("FHIR_TOKEN"),
                     help="bearer token for --server (default: FHIR_TOKEN, else an admin token signed with the key of --data-dir)")
    add.add_argument("--finess", required=True, help="FINESS number (9 characters)")
    add.add_argument("--name", required=True)
    add.add_argument("--msh4", action="append", default=[], help="an MSH-4 namespace id or universal id its HL7 v2 senders use (repeatable)")
    add.add_argument("--custodian-id", action="append", default=[],
                     help="another custodian id of its CDA documents, ROOT or ROOT^EXTENSION (repeatable)")
    add.add_argument("--facility-type", help="default facilityType, a code of JDV_J02 (e.g. SA01)")
    add.add_argument("--practice-setting", help="default practiceSetting, a code of JDV_J04 (e.g. ETABLISSEMENT)")


def _admin_token(data_dir: Path, base: str) -> str:
    from fhir_server.security.minting import mint
    from fhir_server.security.server_keys import KEYS_DIR, file_generations
    from fhir_server.security.signing import SIGNING_KEY, ServerSigner
    from fhir_server.security.tokens import default_scopes

    kept = file_generations(data_dir / KEYS_DIR, SIGNING_KEY)
    if not kept:
        raise ValueError(f"no --token given and no signing key in {data_dir / KEYS_DIR} to make one")
    signer = ServerSigner(kept[-1].text)
    return mint(signer, kind="admin", audience=f"{base.rstrip('/')}/fhir", ttl=300, scope=default_scopes("admin"),
                subject="facilities", identity={})


def _write_through_server(base: str, resource: dict[str, Any], token: str) -> tuple[int, dict[str, Any]]:
    """PUT Organization?identifier=<FINESS> on the running server (a conditional update)."""
    query = quote(_token(resource["identifier"][0]), safe=":/|")
    request = urllib.request.Request(
        f"{base.rstrip('/')}/fhir/Organization?identifier={query}", method="PUT", data=json.dumps(resource).encode(),
        headers={"Content-Type": "application/fhir+json", "Accept": "application/fhir+json",
                 "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (an operator-given URL)
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"{}")


async def _write_to_store(settings: Settings, resource: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    # The server's wiring, imported here only: the lookup side of this module runs inside it.
    from fhir_server.app import open_repository
    from fhir_server.storage.embedded import EmbeddedStore

    store = None if settings.mongodb_url else EmbeddedStore(settings.data_dir.resolve())
    url = settings.mongodb_url or store.start()  # type: ignore[union-attr]
    try:
        repository, _ = await open_repository(settings, url)
        try:
            result = await repository.conditional_update(PLATFORM, "Organization",
                                                         [("identifier", _token(resource["identifier"][0]))], resource)
        finally:
            await repository.database.close()
    finally:
        if store is not None:
            store.stop()
    return (201 if result.created else 200), result.stored.resource or {}


def run(args: argparse.Namespace) -> int:
    try:
        resource = organization(args)
    except ValueError as exc:
        print(f"fhir-server facilities add: {exc}", file=sys.stderr)
        return 2
    try:
        if args.server:
            status, body = _write_through_server(args.server, resource,
                                                 args.token or _admin_token(args.data_dir, args.server))
        else:
            status, body = asyncio.run(_write_to_store(Settings(data_dir=args.data_dir), resource))
    except StoreUnavailable as exc:
        print(f"fhir-server facilities add: the store of {args.data_dir} cannot be opened ({exc}); "
              "if the server is running on it, pass --server http://host:port to write through it", file=sys.stderr)
        return 1
    except FhirError as exc:
        status, body = exc.status, {"issue": [i.to_fhir() for i in exc.issues]}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"fhir-server facilities add: cannot reach {args.server}: {exc}", file=sys.stderr)
        return 1
    if status >= 400:
        problems = "; ".join(i.get("diagnostics", "") for i in body.get("issue", []))
        print(f"fhir-server facilities add: refused ({status}): {problems}", file=sys.stderr)
        return 1
    print(f"Organization/{body.get('id')} {'added' if status == 201 else 'updated'}: {args.name} (FINESS {args.finess})")
    return 0
