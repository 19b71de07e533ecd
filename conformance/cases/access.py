"""Access rules of the French shared health record (DMP / Mon espace santé), checked with the role
tokens the tester gives: the patient (titulaire), a professional the patient authorised, a professional
the patient blocked, and the patient's médecin traitant. The tester prepares that record; the tool
deposits its own documents into it (ITI-65, with the tool's token) and reads them with each role.

A hidden document may answer 403 or 404 (FHIR security.html leaves the choice to the server); the
requirement is that its content does not reach the caller, and that searches do not list it."""

from __future__ import annotations

import httpx

from conformance.cases.mhd import RECIPIENT, Provided, provide, require_actor
from conformance.registry import case
from conformance.session import Failed, NotRun, Session, body_json, expect

CSP = "CSP"
# Code de la santé publique, quoted in the English translation of french-business-law.com.
R1111_46 = ("Access to the shared medical record by the professionals mentioned in article L. 1111-15 and in III of "
            "article L. 1111-17 as well as by health, social or medico-social establishments or services is subject "
            "to the prior consent of the holder")
R1111_49 = ("The holder may decide that data concerning him/her contained in his/her shared medical file should not "
            "be accessible to the healthcare professionals and establishments, social or medico-social establishments "
            "or services authorised to access his/her file. [...] However, this data remains accessible to the health "
            "professional or establishment, the social or medico-social establishment or service which placed it in "
            "the shared [medical file]")
# Code de la santé publique (decree 2016-914, Légifrance LEGIARTI000032844408), on the médecin traitant.
MEDECIN_TRAITANT_TEXT = (
    "Le médecin traitant mentionné à l'article L. 162-5-3 du code de la sécurité sociale accède à l'ensemble des "
    "informations contenues dans le dossier médical partagé, y compris celles rendues inaccessibles par son "
    "titulaire")
MASQUE_PS = "MASQUE_PS"
INVISIBLE_PATIENT = "INVISIBLE_PATIENT"
HIDDEN = {403, 404}


def record(s: Session) -> dict[str, Provided]:
    """The documents of the access tests, deposited once per run into the tester's record: a plain one,
    one masked to professionals (MASQUE_PS) and one invisible to the patient (INVISIBLE_PATIENT)."""
    if "access" in s.shared:
        return s.shared["access"]  # type: ignore[no-any-return]
    require_actor(s, RECIPIENT)
    patient_id = s.options.patient_id or _patient_of_token(s)
    documents = {"plain": provide(s, patient_id),
                 MASQUE_PS: provide(s, patient_id, labels=(MASQUE_PS,)),
                 INVISIBLE_PATIENT: provide(s, patient_id, labels=(INVISIBLE_PATIENT,))}
    s.shared["access"] = documents
    return documents


def _patient_of_token(s: Session) -> str:
    response = s.get("Patient", role="patient")
    expect(response, {200}, "GET [base]/Patient with the patient's token (to find their record; or give --patient-id)")
    ids = [e["resource"]["id"] for e in body_json(response).get("entry", [])
           if e.get("resource", {}).get("resourceType") == "Patient"]
    if len(ids) != 1:
        raise NotRun(f"the patient's token sees {len(ids)} Patients: give --patient-id")
    return ids[0]


def _reads(s: Session, role: str, document: Provided) -> httpx.Response:
    return s.get(f"DocumentReference/{document.document_id}", role=role)


def _listed(s: Session, role: str, document: Provided) -> bool | None:
    """Whether a search of the record's documents with `role`'s token lists the document (None: refused)."""
    response = s.get("DocumentReference", params={"patient": f"Patient/{document.patient_id}"}, role=role)
    if response.status_code in HIDDEN:
        return None
    expect(response, {200}, f"search of the record's documents with the {role} token")
    return any(e.get("resource", {}).get("id") == document.document_id for e in body_json(response).get("entry", []))


def _hidden(s: Session, role: str, document: Provided, what: str) -> None:
    response = _reads(s, role, document)
    if response.status_code == 200:
        raise Failed(f"the {role.replace('_', ' ')} read {what} (200)")
    if response.status_code not in HIDDEN:
        raise Failed(f"reading {what} as the {role.replace('_', ' ')} answered {response.status_code}, expected 403 or 404")
    if _listed(s, role, document):
        raise Failed(f"a search by the {role.replace('_', ' ')} lists {what}")


def _seen(s: Session, role: str, document: Provided, what: str) -> None:
    expect(_reads(s, role, document), {200}, f"read of {what} by the {role.replace('_', ' ')}")
    if _listed(s, role, document) is not True:
        raise Failed(f"a search of the record by the {role.replace('_', ' ')} does not list {what}")


def _roles(s: Session, *roles: str) -> None:
    """NotDeclared on a server that is no document recipient (these are a document-sharing record's
    rules), then NotRun when a role's token was not given."""
    require_actor(s, RECIPIENT)
    missing = [r for r in roles if not s.options.roles.get(r)]
    if missing:
        raise NotRun("needs the token of: " + ", ".join(r.replace("_", " ") for r in missing))


@case("ACCESS-01", "An authorised professional reads a document of the record", ["access", "DMP"], CSP,
      "R.1111-46", R1111_46)
def authorised_reads(s: Session) -> None:
    _roles(s, "professional")
    _seen(s, "professional", record(s)["plain"], "a plain document")


@case("ACCESS-02", "A masked document (MASQUE_PS) is hidden from an authorised professional", ["access", "DMP"],
      CSP, "R.1111-49; ANS TRE_A07 MASQUE_PS", R1111_49)
def masked_hidden_from_professional(s: Session) -> None:
    _roles(s, "professional")
    _hidden(s, "professional", record(s)[MASQUE_PS], "a document masked to professionals")


@case("ACCESS-03", "A masked document stays visible to the patient", ["access", "DMP"], CSP, "R.1111-49; ANS TRE_A07",
      R1111_49 + " [The decision hides the data from professionals and establishments, not from the holder.]")
def masked_seen_by_patient(s: Session) -> None:
    _roles(s, "patient")
    _seen(s, "patient", record(s)[MASQUE_PS], "a document masked to professionals")


@case("ACCESS-04", "The médecin traitant reads a masked document", ["access", "DMP"], CSP,
      "R.1111 (decree 2016-914), LEGIARTI000032844408", MEDECIN_TRAITANT_TEXT)
def medecin_traitant_reads_masked(s: Session) -> None:
    _roles(s, "medecin_traitant")
    _seen(s, "medecin_traitant", record(s)[MASQUE_PS], "a document masked to professionals")


@case("ACCESS-05", "A professional the patient blocked reads nothing of the record", ["access", "DMP"], CSP,
      "R.1111-46", R1111_46 + " [A professional the holder refused has no consent: they read none of the record.]")
def blocked_reads_nothing(s: Session) -> None:
    _roles(s, "blocked_professional")
    document = record(s)["plain"]
    response = _reads(s, "blocked_professional", document)
    if response.status_code not in HIDDEN:
        raise Failed(f"the blocked professional's read of a plain document answered {response.status_code}, "
                     "expected 403 or 404")
    if _listed(s, "blocked_professional", document):
        raise Failed("a search by the blocked professional lists a document of the record")


@case("ACCESS-06", "A document invisible to the patient (INVISIBLE_PATIENT) is hidden from the patient",
      ["access", "DMP"], "ANS-DMP", "TRE_A07 INVISIBLE_PATIENT",
      "[ANS TRE_A07-StatutVisibiliteDocument] INVISIBLE_PATIENT: document not visible to the patient (until the "
      "announcement consultation has taken place).")
def invisible_hidden_from_patient(s: Session) -> None:
    _roles(s, "patient")
    _hidden(s, "patient", record(s)[INVISIBLE_PATIENT], "a document invisible to the patient")
