"""The search parameters the French document-sharing profile (PDSm / DMP) needs, on realistic
DocumentReference, Appointment, Communication and Consent resources."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.search.conftest import Store

INS_NIR = "urn:oid:1.2.250.1.213.1.4.8"
RPPS = "urn:oid:1.2.250.1.71.4.2.1"
LOINC = "http://loinc.org"
CLASS_CODE = "urn:oid:1.2.250.1.213.1.1.4.1"
FACILITY = "urn:oid:1.2.250.1.71.4.2.4"
PRACTICE = "urn:oid:1.2.250.1.213.1.1.4.9"
FORMAT = "urn:oid:1.3.6.1.4.1.19376.1.2.3"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
EVENT = "urn:oid:1.2.250.1.213.2.5"
SERVICE_TYPE = "http://terminology.hl7.org/CodeSystem/service-type"
COMM_CATEGORY = "http://terminology.hl7.org/CodeSystem/communication-category"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"

Find = Callable[[str, list[tuple[str, str]]], set[str]]


def document(patient: str, author: str, *, type_code: str, date: str, creation: str, facility: str,
             setting: str, event: str, fmt: str, period: tuple[str, str], masked: bool = False,
             replaces: str | None = None) -> dict:
    security = [{"coding": [{"system": CONFIDENTIALITY, "code": "N"}]}]
    if masked:
        security.append({"coding": [{"system": "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument", "code": "MASQUE_PS"}]})
    resource = {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {"coding": [{"system": LOINC, "code": type_code}]},
        "category": [{"coding": [{"system": CLASS_CODE, "code": "10", "display": "Compte rendu"}]}],
        "subject": {"reference": f"Patient/{patient}"},
        "date": date,
        "author": [{"reference": f"PractitionerRole/{author}"}],
        "securityLabel": security,
        "content": [{"attachment": {"contentType": "application/pdf", "language": "fr-FR", "creation": creation,
                                    "url": "https://dmp.example.fr/binaries/doc.pdf"},
                     "format": {"system": FORMAT, "code": fmt}}],
        "context": {"event": [{"coding": [{"system": EVENT, "code": event}]}],
                    "period": {"start": period[0], "end": period[1]},
                    "facilityType": {"coding": [{"system": FACILITY, "code": facility}]},
                    "practiceSetting": {"coding": [{"system": PRACTICE, "code": setting}]}},
    }
    if replaces:
        resource["relatesTo"] = [{"code": "replaces", "target": {"reference": f"DocumentReference/{replaces}"}}]
    return resource


@pytest.fixture(scope="module")
def people(store: Store) -> dict[str, str]:
    doctor = store.create({"resourceType": "Practitioner", "identifier": [{"system": RPPS, "value": "10001234567"}],
                           "name": [{"family": "Lambert", "given": ["Claire"], "prefix": ["Dr"]}]})
    return {
        "alice": store.create({"resourceType": "Patient", "identifier": [{"system": INS_NIR, "value": "283052A123456"}],
                               "name": [{"family": "Mercier", "given": ["Alice"]}], "birthDate": "1983-05-12"}),
        "bruno": store.create({"resourceType": "Patient", "identifier": [{"system": INS_NIR, "value": "176112B654321"}],
                               "name": [{"family": "Garnier", "given": ["Bruno"]}], "birthDate": "1976-11-30"}),
        "doctor": doctor,
        "role": store.create({"resourceType": "PractitionerRole", "practitioner": {"reference": f"Practitioner/{doctor}"}}),
        "clinic": store.create({"resourceType": "Organization", "name": "Centre hospitalier de Rodez"}),
    }


@pytest.fixture
def find(store: Store) -> Find:
    def run(path: str, params: list[tuple[str, str]]) -> set[str]:
        return store.ids(path, params)
    return run


@pytest.fixture(scope="module")
def documents(store: Store, people: dict[str, str]) -> dict[str, str]:
    alice, bruno, role = people["alice"], people["bruno"], people["role"]
    old = store.create(document(alice, role, type_code="11490-0", date="2024-02-01T09:00:00+01:00", creation="2024-01-31T18:00:00+01:00",
                                facility="SA01", setting="ETABLISSEMENT", event="GLE", fmt="urn:ihe:iti:xds-sd:pdf:2008",
                                period=("2024-01-25", "2024-01-31")))
    new = store.create(document(alice, role, type_code="11490-0", date="2024-02-03T10:00:00+01:00", creation="2024-02-02T08:30:00+01:00",
                                facility="SA01", setting="ETABLISSEMENT", event="GLE", fmt="urn:ihe:iti:xds-sd:pdf:2008",
                                period=("2024-01-25", "2024-01-31"), replaces=old))
    lab = store.create(document(alice, role, type_code="11502-2", date="2024-06-10T14:00:00+02:00", creation="2024-06-10T11:00:00+02:00",
                                facility="SA29", setting="AMBULATOIRE", event="BIO", fmt="urn:ihe:lab:xd-lab:2008",
                                period=("2024-06-10", "2024-06-10"), masked=True))
    vaccine = store.create(document(bruno, role, type_code="87273-9", date="2024-09-15T16:00:00+02:00", creation="2024-09-15T15:45:00+02:00",
                                    facility="SA07", setting="AMBULATOIRE", event="VAC", fmt="urn:ihe:iti:xds-sd:pdf:2008",
                                    period=("2024-09-15", "2024-09-15")))
    return {"old": old, "new": new, "lab": lab, "vaccine": vaccine}


def test_document_reference_parameters(find: Find, people: dict[str, str], documents: dict[str, str]) -> None:
    d, p = documents, people
    doc = "/DocumentReference"
    assert find(doc, [("patient", p["alice"])]) == {d["old"], d["new"], d["lab"]}
    assert find(doc, [("patient.identifier", f"{INS_NIR}|176112B654321")]) == {d["vaccine"]}
    assert find(doc, [("patient.identifier", f"{INS_NIR}|000000000000000")]) == set()
    # Writing the replacement made the replaced document superseded.
    assert find(doc, [("patient", p["alice"]), ("status", "current")]) == {d["new"], d["lab"]}
    assert find(doc, [("status", "superseded")]) == {d["old"]}
    assert find(doc, [("type", f"{LOINC}|11502-2")]) == {d["lab"]}
    assert find(doc, [("category", f"{CLASS_CODE}|10")]) == set(d.values())
    assert find(doc, [("category", f"{CLASS_CODE}|11")]) == set()
    assert find(doc, [("date", "ge2024-06-01"), ("date", "lt2024-09-01")]) == {d["lab"]}
    assert find(doc, [("date", "2024-02-03")]) == {d["new"]}
    assert find(doc, [("period", "2024-01")]) == {d["old"], d["new"]}
    assert find(doc, [("period", "sa2024-05")]) == {d["lab"], d["vaccine"]}
    assert find(doc, [("period", "sa2024-06-10")]) == {d["vaccine"]}
    assert find(doc, [("creation", "2024-01-31")]) == {d["old"]}
    assert find(doc, [("creation", "lt2024-02")]) == {d["old"]}
    assert find(doc, [("facility", f"{FACILITY}|SA07")]) == {d["vaccine"]}
    assert find(doc, [("setting", f"{PRACTICE}|AMBULATOIRE")]) == {d["lab"], d["vaccine"]}
    assert find(doc, [("event", f"{EVENT}|VAC,{EVENT}|BIO")]) == {d["lab"], d["vaccine"]}
    assert find(doc, [("format", f"{FORMAT}|urn:ihe:lab:xd-lab:2008")]) == {d["lab"]}
    assert find(doc, [("security-label", "MASQUE_PS")]) == {d["lab"]}
    assert find(doc, [("security-label:not", "MASQUE_PS"), ("patient", p["alice"])]) == {d["old"], d["new"]}
    assert find(doc, [("relatesto", f"DocumentReference/{d['old']}")]) == {d["new"]}
    assert find(doc, [("relatesto", d["new"])]) == set()
    assert find(doc, [("author", f"PractitionerRole/{p['role']}")]) == set(d.values())
    assert find(doc, [("author:PractitionerRole.practitioner.identifier", f"{RPPS}|10001234567")]) == set(d.values())
    assert find(doc, [("author", f"Practitioner/{p['doctor']}")]) == set()


def test_dmp_query_shape(store: Store, people: dict[str, str], documents: dict[str, str]) -> None:
    """The usual practitioner query: one patient's current documents of a type, newest first."""
    bundle = store.bundle("/DocumentReference", [("patient.identifier", f"{INS_NIR}|283052A123456"), ("status", "current"),
                                                 ("_sort", "-date"), ("_count", "20")])
    assert [e["resource"]["id"] for e in bundle["entry"]] == [documents["lab"], documents["new"]]


@pytest.fixture(scope="module")
def appointments(store: Store, people: dict[str, str]) -> dict[str, str]:
    def appointment(status: str, patient: str, start: str, service: str, number: str) -> dict:
        return {"resourceType": "Appointment", "status": status,
                "identifier": [{"system": "urn:oid:1.2.250.1.999.1.1", "value": number}],
                "serviceType": [{"coding": [{"system": SERVICE_TYPE, "code": service}]}],
                "start": start, "end": start.replace(":00:00", ":30:00"),
                "participant": [{"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"},
                                {"actor": {"reference": f"Practitioner/{people['doctor']}"}, "status": "accepted"}]}
    return {
        "consult": store.create(appointment("booked", people["alice"], "2025-03-04T09:00:00+01:00", "124", "RDV-1")),
        "cancelled": store.create(appointment("cancelled", people["alice"], "2025-03-11T09:00:00+01:00", "124", "RDV-2")),
        "other": store.create(appointment("booked", people["bruno"], "2025-04-01T14:00:00+02:00", "57", "RDV-3")),
    }


def test_appointment_parameters(find: Find, people: dict[str, str], appointments: dict[str, str]) -> None:
    a, p = appointments, people
    assert find("/Appointment", [("patient", f"Patient/{p['alice']}")]) == {a["consult"], a["cancelled"]}
    assert find("/Appointment", [("actor", f"Practitioner/{p['doctor']}")]) == set(a.values())
    assert find("/Appointment", [("actor:Patient", p["bruno"])]) == {a["other"]}
    assert find("/Appointment", [("date", "2025-03-04")]) == {a["consult"]}
    assert find("/Appointment", [("date", "ge2025-03-05")]) == {a["cancelled"], a["other"]}
    assert find("/Appointment", [("status", "booked")]) == {a["consult"], a["other"]}
    assert find("/Appointment", [("identifier", "urn:oid:1.2.250.1.999.1.1|RDV-2")]) == {a["cancelled"]}
    assert find("/Appointment", [("service-type", f"{SERVICE_TYPE}|57")]) == {a["other"]}
    assert find("/Appointment", [("service-type", f"{SERVICE_TYPE}|1")]) == set()


@pytest.fixture(scope="module")
def communications(store: Store, people: dict[str, str], documents: dict[str, str]) -> dict[str, str]:
    def communication(status: str, category: str, sent: str, received: str | None, part_of: str | None) -> dict:
        resource = {"resourceType": "Communication", "status": status,
                    "category": [{"coding": [{"system": COMM_CATEGORY, "code": category}]}],
                    "subject": {"reference": f"Patient/{people['alice']}"},
                    "recipient": [{"reference": f"Practitioner/{people['doctor']}"}],
                    "sender": {"reference": f"Organization/{people['clinic']}"},
                    "sent": sent, "payload": [{"contentString": "Votre compte rendu est disponible."}]}
        if received:
            resource["received"] = received
        if part_of:
            resource["partOf"] = [{"reference": part_of}]
        return resource
    first = store.create(communication("completed", "notification", "2025-01-10T08:00:00Z", "2025-01-10T08:05:00Z", None))
    return {
        "first": first,
        "reply": store.create(communication("completed", "alert", "2025-01-11T10:00:00Z", "2025-01-12T07:00:00Z",
                                            f"Communication/{first}")),
        "pending": store.create(communication("in-progress", "notification", "2025-02-01T12:00:00Z", None,
                                              f"DocumentReference/{documents['new']}")),
    }


def test_communication_parameters(find: Find, people: dict[str, str], documents: dict[str, str],
                                  communications: dict[str, str]) -> None:
    c, p = communications, people
    assert find("/Communication", [("subject", f"Patient/{p['alice']}")]) == set(c.values())
    assert find("/Communication", [("subject", f"Patient/{p['bruno']}")]) == set()
    assert find("/Communication", [("recipient", f"Practitioner/{p['doctor']}")]) == set(c.values())
    assert find("/Communication", [("sender", f"Organization/{p['clinic']}")]) == set(c.values())
    assert find("/Communication", [("sent", "2025-01-11")]) == {c["reply"]}
    assert find("/Communication", [("received", "ge2025-01-11")]) == {c["reply"]}
    assert find("/Communication", [("received:missing", "true")]) == {c["pending"]}
    assert find("/Communication", [("category", f"{COMM_CATEGORY}|notification")]) == {c["first"], c["pending"]}
    assert find("/Communication", [("status", "in-progress")]) == {c["pending"]}
    assert find("/Communication", [("part-of", f"Communication/{c['first']}")]) == {c["reply"]}
    # part-of is Reference(Any): a bare id and a :Type modifier both work.
    assert find("/Communication", [("part-of", documents["new"])]) == {c["pending"]}
    assert find("/Communication", [("part-of:DocumentReference", documents["new"])]) == {c["pending"]}
    assert find("/Communication", [("part-of:Communication", documents["new"])]) == set()


@pytest.fixture(scope="module")
def consents(store: Store, people: dict[str, str], documents: dict[str, str]) -> dict[str, str]:
    def consent(status: str, patient: str, action: str, period: tuple[str, str], data: str | None) -> dict:
        provision: dict = {"type": "permit", "period": {"start": period[0], "end": period[1]},
                           "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                                           "code": "PRCP"}]},
                                      "reference": {"reference": f"Practitioner/{people['doctor']}"}}],
                           "action": [{"coding": [{"system": CONSENT_ACTION, "code": action}]}]}
        if data:
            provision["data"] = [{"meaning": "instance", "reference": {"reference": data}}]
        return {"resourceType": "Consent", "status": status,
                "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
                "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
                "patient": {"reference": f"Patient/{patient}"},
                "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
                "provision": provision}
    return {
        "access": store.create(consent("active", people["alice"], "access", ("2024-01-01", "2024-12-31"),
                                       f"DocumentReference/{documents['lab']}")),
        "expired": store.create(consent("inactive", people["alice"], "collect", ("2020-01-01", "2020-12-31"), None)),
        "bruno": store.create(consent("active", people["bruno"], "access", ("2025-01-01", "2025-06-30"), None)),
    }


def test_consent_parameters(find: Find, people: dict[str, str], documents: dict[str, str], consents: dict[str, str]) -> None:
    c, p = consents, people
    assert find("/Consent", [("patient", p["alice"])]) == {c["access"], c["expired"]}
    assert find("/Consent", [("status", "active")]) == {c["access"], c["bruno"]}
    assert find("/Consent", [("category", f"{LOINC}|59284-0")]) == set(c.values())
    assert find("/Consent", [("scope", f"{CONSENT_SCOPE}|patient-privacy")]) == set(c.values())
    assert find("/Consent", [("scope", f"{CONSENT_SCOPE}|research")]) == set()
    assert find("/Consent", [("action", f"{CONSENT_ACTION}|access")]) == {c["access"], c["bruno"]}
    assert find("/Consent", [("actor", f"Practitioner/{p['doctor']}")]) == set(c.values())
    assert find("/Consent", [("actor", f"Patient/{p['alice']}")]) == set()
    assert find("/Consent", [("period", "2024-06-15")]) == set()  # the year-long period is not within one day
    # A period enclosing the day both extends above it (ge) and starts before it (le).
    assert find("/Consent", [("period", "ge2024-06-15"), ("period", "le2024-06-15")]) == {c["access"]}
    assert find("/Consent", [("period", "sa2024-12-31")]) == {c["bruno"]}
    assert find("/Consent", [("period", "2024")]) == {c["access"]}
    assert find("/Consent", [("data", f"DocumentReference/{documents['lab']}")]) == {c["access"]}
    assert find("/Consent", [("data", documents["lab"])]) == {c["access"]}
    assert find("/Consent", [("data", f"DocumentReference/{documents['new']}")]) == set()
