"""A shared record and the people around it, for the access-matrix tests of issue 12
(docs/ACCESS-RULES.md says how each rule is represented; this module writes it that way).

Each test module builds its own world with fresh identifiers, on the session's server, so modules
never see each other's data. Setup writes go with the platform's token, except deposits whose
author matters: those go with the depositor's own token, through ITI-65, so each document comes
with its submission set (List) and its Binary (whose `securityContext` is the DocumentReference).
"""

from __future__ import annotations

import copy
import random
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from fhir_server.security.callers import IDNATPS_SYSTEM
from tests.mhd.documents import PDF, provide_bundle
from tests.server_process import ServerProcess, server_token

FHIR = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
INS_NIA = "urn:oid:1.2.250.1.213.1.4.10"
FINESS = "urn:oid:1.2.250.1.71.4.2.2"
RECORD_STATUS = "https://fhir-server.example.org/StructureDefinition/record-status"
TRE_A07 = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
TRE_A05 = "https://mos.esante.gouv.fr/NOS/TRE_A05-TypeDocComplementaire/FHIR/TRE-A05-TypeDocComplementaire"
LOINC = "http://loinc.org"
CONSENT_SCOPE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]}
CONSENT_CATEGORY = [{"coding": [{"system": LOINC, "code": "59284-0"}]}]
ETREAT = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "ETREAT"}
# TRE_G15 profession codes (ANS): physician, pharmacist.
PHYSICIAN, PHARMACIST = "10", "21"
# Document types: a discharge letter (LOINC 11490-0), which every profession of the habilitation
# matrix reads, and the residence certificate (TRE_A05 ATTEST-RESID), which physicians do not
# (issue 12, rule 3).
LETTER = (LOINC, "11490-0")
RESIDENCE = (TRE_A05, "ATTEST-RESID")
# A psychiatric synthesis (LOINC 68599-0): physicians read it, pharmacists do not (habilitation
# matrix of policies/habilitations.json).
PSYCHIATRIC = (LOINC, "68599-0")
# A document is said hidden by reading as 404; refused callers get 403.
REFUSED = "refused"


def digits(n: int) -> str:
    return "".join(random.choice("0123456789") for _ in range(n))


def new_idnatps() -> str:
    return "8" + digits(11)


def new_ins() -> str:
    return "2" + digits(14)


def new_finess() -> str:
    return "9" + digits(8)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Professional:
    idnatps: str
    profession: str
    organization: str
    practitioner_id: str = ""


@dataclass
class Document:
    id: str
    binary_id: str
    list_id: str
    identifier: str
    master_id: str
    attachment_url: str


@dataclass(repr=False)
class World:
    server: ServerProcess
    http: httpx.Client
    unique: str
    started: str
    patient_id: str = ""
    ins: str = ""
    professionals: dict[str, Professional] = field(default_factory=dict)
    documents: dict[str, Document] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    # Other patients of the world by name (twins, records of a given status).
    patients: dict[str, str] = field(default_factory=dict)
    # Consents a test ends later, by name.
    consents: dict[str, str] = field(default_factory=dict)
    # Binaries written on their own (not through ITI-65), by name.
    binaries: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"World({self.unique})"

    # -- callers --------------------------------------------------------------------------------

    def practitioner(self, name: str, profession: str = PHYSICIAN, organization: str | None = None) -> Professional:
        """A Practitioner resource carrying a fresh IdNatPs, and its token under `name`."""
        professional = Professional(new_idnatps(), profession, organization or new_finess())
        professional.practitioner_id = self.create({
            "resourceType": "Practitioner", "name": [{"family": f"{name}-{self.unique}"}],
            "identifier": [{"system": IDNATPS_SYSTEM, "value": professional.idnatps}]})
        self.professionals[name] = professional
        self.tokens[name] = self.practitioner_token(professional)
        return professional

    def practitioner_token(self, professional: Professional, purpose: str | None = None) -> str:
        return server_token(self.server.data_dir, self.server.base_url, "practitioner", idnatps=professional.idnatps,
                            profession=professional.profession, organization=professional.organization,
                            purpose_of_use=purpose)

    def emergency(self, name: str, of: str) -> None:
        """`name` is `of` with purpose of use BTG (break the glass)."""
        self.tokens[name] = self.practitioner_token(self.professionals[of], "BTG")

    def system(self, name: str, finess: str) -> None:
        self.tokens[name] = server_token(self.server.data_dir, self.server.base_url, "system", organization=finess)

    def patient_caller(self, name: str, ins: str, context: str | None = None) -> None:
        self.tokens[name] = server_token(self.server.data_dir, self.server.base_url, "patient", ins=ins,
                                         patient=context)

    def headers(self, caller: str) -> dict[str, str]:
        token = self.server.token if caller == "platform" else self.tokens[caller]
        return {**FHIR, "Authorization": f"Bearer {token}"}

    def request(self, caller: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers(caller), **kwargs.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kwargs)

    def get(self, caller: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.request(caller, "GET", path, **kwargs)

    # -- record ---------------------------------------------------------------------------------

    def create(self, resource: dict[str, Any], caller: str = "platform") -> str:
        response = self.request(caller, "POST", f"/{resource['resourceType']}", json=resource)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def patient(self, *, status: str | None = None, general_practitioner: str | None = None,
                birth_date: str = "2014-05-02", ins: str | None = None) -> tuple[str, str]:
        """A Patient with an INS-NIA (the test INS); returns (id, INS)."""
        ins = ins or new_ins()
        resource: dict[str, Any] = {
            "resourceType": "Patient", "name": [{"family": f"Acces{self.unique}", "given": ["Lea"]}],
            "identifier": [{"system": INS_NIA, "value": ins}], "gender": "female", "birthDate": birth_date}
        if status is not None:
            resource["extension"] = [{"url": RECORD_STATUS, "valueCode": status}]
        if general_practitioner is not None:
            resource["generalPractitioner"] = [{"reference": f"Practitioner/{general_practitioner}"}]
        return self.create(resource), ins

    def set_status(self, patient_id: str, status: str) -> None:
        current = self.get("platform", f"/Patient/{patient_id}").json()
        others = [e for e in current.get("extension", []) if e.get("url") != RECORD_STATUS]
        current["extension"] = [*others, {"url": RECORD_STATUS, "valueCode": status}]
        response = self.request("platform", "PUT", f"/Patient/{patient_id}", json=current)
        assert response.status_code == 200, response.text

    def consent(self, patient_id: str, kind: str, actor: Professional | None = None, purpose: bool = False,
                caller: str = "platform") -> str:
        """A privacy Consent of the patient: permit or deny naming a practitioner, or (purpose) the
        opposition to emergency access."""
        provision: dict[str, Any] = {"type": kind}
        if actor is not None:
            provision["actor"] = [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                                        "code": "PRCP"}]},
                                   "reference": {"reference": f"Practitioner/{actor.practitioner_id}"}}]
        if purpose:
            provision["purpose"] = [ETREAT]
        return self.create({"resourceType": "Consent", "status": "active", "scope": CONSENT_SCOPE,
                            "category": CONSENT_CATEGORY, "patient": {"reference": f"Patient/{patient_id}"},
                            "dateTime": now(), "provision": provision}, caller)

    def representative(self, minor_id: str, ins: str, relationship: str = "PRN") -> str:
        return self.create({"resourceType": "RelatedPerson", "patient": {"reference": f"Patient/{minor_id}"},
                            "identifier": [{"system": INS_NIA, "value": ins}],
                            "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                                          "code": relationship}]}]})

    def provide(self, caller: str, patient_id: str, *, doc_type: tuple[str, str] = LETTER,
                labels: tuple[str, ...] = (), author: Professional | None = None, data: bytes = PDF,
                identifiers: tuple[tuple[str, str], ...] = (), author_organisation: str | None = None) -> httpx.Response:
        """ITI-65 with `caller`'s token: a submission set, a DocumentReference (with `identifiers`
        beside its own) and its Binary. The author is a professional (`author`, else the builder's
        own), or an organisation of that FINESS (an establishment's document)."""
        master_id = f"1.2.250.1.999.1.1.7.{random.randrange(10**12)}"
        bundle = provide_bundle({"reference": f"Patient/{patient_id}"}, master_id, data=data)
        document = bundle["entry"][1]["resource"]
        document["type"] = {"coding": [{"system": doc_type[0], "code": doc_type[1]}]}
        document["identifier"] = [*document["identifier"], *({"system": s, "value": v} for s, v in identifiers)]
        document["securityLabel"] = [*document["securityLabel"],
                                     *({"coding": [{"system": TRE_A07, "code": label}]} for label in labels)]
        for entry in (bundle["entry"][0]["resource"], document):
            entry["contained"] = [_authored(copy.deepcopy(c), author, author_organisation) for c in entry["contained"]]
        return self.request(caller, "POST", "", json=bundle)

    def deposit(self, key: str, caller: str, patient_id: str | None = None, **kwargs: Any) -> Document:
        """A document deposited by `caller` and remembered under `key`."""
        response = self.provide(caller, patient_id or self.patient_id, **kwargs)
        assert response.status_code == 200, response.text
        created = {loc.split("/")[0]: loc.split("/")[1]
                   for loc in (e["response"]["location"] for e in response.json()["entry"])}
        document = self.get("platform", f"/DocumentReference/{created['DocumentReference']}").json()
        identifier = next(i["value"] for i in document["identifier"] if i.get("use") == "official")
        url = document["content"][0]["attachment"]["url"]
        self.documents[key] = Document(created["DocumentReference"], created["Binary"], created["List"], identifier,
                                       document["masterIdentifier"]["value"], url if url.startswith("/") else "/" + url)
        return self.documents[key]

    def key_of(self, resource_id: str) -> str | None:
        return next((k for k, d in self.documents.items() if d.id == resource_id), None)


def _authored(contained: dict[str, Any], author: Professional | None, organisation: str | None) -> dict[str, Any]:
    """The contained author of a provide bundle, as the test wants it."""
    if contained["resourceType"] != "PractitionerRole":
        return contained
    if organisation is not None:
        return {"resourceType": "Organization", "id": contained["id"], "name": f"Etablissement {organisation}",
                "identifier": [{"system": FINESS, "value": organisation}]}
    if author is not None:
        contained["practitioner"] = {"identifier": {"system": IDNATPS_SYSTEM, "value": author.idnatps}}
    return contained


def open_world(server: ServerProcess) -> World:
    unique = uuid.uuid4().hex[:12]
    return World(server, httpx.Client(base_url=server.base_url, timeout=60.0), unique, now())


# -- what a caller gets ---------------------------------------------------------------------------

def bundle_ids(bundle: dict[str, Any], resource_type: str = "DocumentReference", mode: str | None = None) -> set[str]:
    return {e["resource"]["id"] for e in bundle.get("entry", [])
            if e.get("resource", {}).get("resourceType") == resource_type
            and (mode is None or e.get("search", {}).get("mode") == mode)}


def is_refusal(response: httpx.Response) -> bool:
    """The record-level refusal: 403 with an OperationOutcome."""
    return response.status_code == 403 and response.json().get("resourceType") == "OperationOutcome"


def says_authorisation_missing(response: httpx.Response) -> bool:
    text = " ".join(str(i.get("diagnostics", "")) + " " + str(i.get("details", {}).get("text", ""))
                    for i in response.json().get("issue", []))
    return re.search(r"authori[sz]|autoris", text, re.IGNORECASE) is not None


def not_found_shape(response: httpx.Response, resource_id: str) -> tuple[int, str, Any]:
    """What a 404 shows once the asked id and the request's own id (X-Request-ID, which every
    OperationOutcome carries) are taken out: equal for hidden and never-existing."""
    body = response.text.replace(resource_id, "<id>") if resource_id else response.text
    body = body.replace(response.headers["x-request-id"], "<request>")
    return response.status_code, response.headers.get("content-type", ""), re.sub(r'"lastUpdated":"[^"]*"', "", body)
