"""The apps connected to a record, as the patient sees and ends them.

- `GET [base]/Patient/{id}/$connected-apps`: a searchset Bundle of Consents, one per active grant
  reaching the record (fhir_server.apps.grants). They are built from the grants when asked, not
  stored: the grant is the one truth the token check reads, and a stored copy would be a second
  one. Each Consent: category `app-connection` of the project CodeSystem
  (profiles/CodeSystem/CodeSystem-app-connection.json), scope `patient-privacy`, the person who
  agreed as performer (their INS), the app as provision actor (its client id), each granted scope
  as a `granted-scope` extension of the provision, and when the app last used it (`last-used`,
  written at most once a minute).
- `POST [base]/Patient/{id}/$disconnect-app` with `consent` (the Consent id, as a query parameter
  or in a Parameters body): the grant is revoked; the app's access and refresh tokens stop at once.

Both are for the patient themself or their legal representative, with their own token (not an
app's: an app does not manage the apps of a record): whoever may read the record's Patient under
the access rules, with a patient token.

`records_of` lists the records a signed-in person may connect an app to (their own, and those of
the minors they represent), for the consent page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.access.records import INS_SYSTEMS, representative_link
from fhir_server.api.caller import request_caller
from fhir_server.api.instance_routes import repository
from fhir_server.api.responses import fhir_response
from fhir_server.apps.grants import Grant, Grants
from fhir_server.apps.registry import App, find_app
from fhir_server.errors import FhirError
from fhir_server.interactions import read as reading
from fhir_server.security.callers import INS_SYSTEM, Caller
from fhir_server.security.scopes import Scopes
from fhir_server.storage.repository import Repository

router = APIRouter()
CATEGORY = {"system": "https://fhir-server.example.org/CodeSystem/app-connection", "code": "app-connection",
            "display": "Connexion d'une application référencée"}
SCOPE = {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
GRANTED_SCOPE = "https://fhir-server.example.org/StructureDefinition/granted-scope"
LAST_USED = "https://fhir-server.example.org/StructureDefinition/last-used"
# The identifier system of the clients of the built-in authorization server (as the audit names them).
CLIENT_SYSTEM = "urn:ietf:rfc:7591"


@dataclass(frozen=True)
class Record:
    patient_id: str
    name: str
    own: bool


def _name(patient: dict[str, Any]) -> str:
    for name in patient.get("name") or []:
        words = [*(name.get("given") or []), name.get("family") or ""]
        text = " ".join(w for w in words if w) or name.get("text") or ""
        if text:
            return str(text)
    return ""


async def records_of(repo: Repository, ins: str) -> list[Record]:
    """The person's own record (the Patient holding their INS) and those of the people they
    represent (a RelatedPerson holding their INS as parent or guardian)."""
    reader = repo.reader(None)
    identifier = ",".join(f"{system}|{ins}" for system in INS_SYSTEMS)
    found: list[Record] = []
    own = await repo.ids("Patient", [("identifier", identifier)], None, 2)
    links = await repo.ids("RelatedPerson", [("identifier", identifier)], None, 20)
    person = Caller("patient", ins, Scopes.parse(""), ins=ins)
    represented = []
    for doc in await reader.find("RelatedPerson", {"_id": {"$in": links}, "del": False}, {"pat": 1}) if links else []:
        patient_id = doc.get("pat")
        if patient_id and patient_id not in represented and await representative_link(reader, person, patient_id):
            represented.append(patient_id)
    wanted = ([own[0]] if len(own) == 1 else []) + represented
    names = {doc["_id"]: _name(doc.get("res") or {})
             for doc in await reader.find("Patient", {"_id": {"$in": wanted}, "del": False}, {"res": 1})} if wanted else {}
    for patient_id in wanted:
        if patient_id in names:
            found.append(Record(patient_id, names[patient_id], own=bool(own) and patient_id == own[0]))
    return found


def as_consent(grant: Grant, app: App | None) -> dict[str, Any]:
    provision: dict[str, Any] = {
        "extension": [{"url": GRANTED_SCOPE, "valueString": word} for word in grant.scope.split()],
        "type": "permit",
        "period": {"start": grant.created},
        "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
                                        "code": "datacollector"}]},
                   "reference": {"identifier": {"system": CLIENT_SYSTEM, "value": grant.client_id},
                                 "display": app.name if app else grant.client_id}}],
    }
    if grant.last_used:
        provision["extension"].append({"url": LAST_USED, "valueDateTime": grant.last_used})
    return {
        "resourceType": "Consent", "id": grant.grant_id,
        "status": "active" if grant.status == "active" else "inactive",
        "scope": {"coding": [SCOPE]}, "category": [{"coding": [CATEGORY]}],
        "patient": {"reference": f"Patient/{grant.patient}"}, "dateTime": grant.created,
        "performer": [{"identifier": {"system": INS_SYSTEM, "value": grant.subject}}],
        "policyRule": {"text": "Connexion d'une application référencée (SMART App Launch)"},
        "provision": provision,
    }


async def _may_manage(request: Request, patient_id: str) -> None:
    caller = request_caller(request)
    if caller.kind != "patient" or caller.client_id is not None:
        raise FhirError(403, "forbidden", "Only the patient or their legal representative, with their own token "
                        "(not an app's), manages the apps connected to a record")
    # The access rules decide: the patient themself, or a legal representative, may read it.
    await reading.read(repository(request), caller, "Patient", patient_id, with_data=False)


@router.get("/fhir/Patient/{patient_id}/$connected-apps", tags=["apps"],
            summary="The apps connected to this record, as Consents (issue 19)")
async def connected_apps(request: Request, patient_id: str) -> Response:
    await _may_manage(request, patient_id)
    grants: Grants = request.app.state.grants
    db = repository(request).database.db
    entries = []
    for grant in await grants.of_record(patient_id):
        consent = as_consent(grant, await find_app(db, grant.client_id))
        entries.append({"fullUrl": f"urn:uuid:{grant.grant_id}", "resource": consent, "search": {"mode": "match"}})
    return fhir_response(request, {"resourceType": "Bundle", "type": "searchset", "total": len(entries),
                                   "entry": entries})


async def _consent_id(request: Request) -> str:
    asked = request.query_params.get("consent")
    if asked:
        return asked
    body = await request.body()
    try:
        parameters = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        raise FhirError(400, "invalid", "The body is not JSON (a Parameters resource naming `consent`)") from None
    for parameter in (parameters.get("parameter") or []) if isinstance(parameters, dict) else []:
        if isinstance(parameter, dict) and parameter.get("name") == "consent":
            value = parameter.get("valueId") or parameter.get("valueString")
            if isinstance(value, str) and value:
                return value
    raise FhirError(400, "required", "Name the connection to end: `consent` (the Consent id of $connected-apps)")


@router.post("/fhir/Patient/{patient_id}/$disconnect-app", tags=["apps"],
             summary="End an app's connection to this record: its tokens stop at once (issue 19)")
async def disconnect_app(request: Request, patient_id: str) -> Response:
    await _may_manage(request, patient_id)
    consent_id = await _consent_id(request)
    grants: Grants = request.app.state.grants
    grant = await grants.find(consent_id)
    if grant is None or grant.patient != patient_id:
        raise FhirError(404, "not-found", f"No app connection {consent_id} to this record")
    await grants.revoke(grant.grant_id, "revoked by the patient")
    ended = await grants.find(grant.grant_id)
    assert ended is not None
    return fhir_response(request, as_consent(ended, await find_app(repository(request).database.db, grant.client_id)))
