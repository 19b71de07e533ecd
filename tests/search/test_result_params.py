"""_include, _revinclude (with :iterate and targets), _summary and _elements."""

from __future__ import annotations

from typing import Any

import pytest

from tests.search.conftest import STRICT, Store, entries, link, match_ids

SUBSETTED = "SUBSETTED"


@pytest.fixture(scope="module")
def data(store: Store) -> dict[str, str]:
    org = store.create({"resourceType": "Organization", "name": "CH de Valence"})
    doctor = store.create({"resourceType": "Practitioner", "name": [{"family": "Faure"}]})
    role = store.create({"resourceType": "PractitionerRole", "practitioner": {"reference": f"Practitioner/{doctor}"},
                         "organization": {"reference": f"Organization/{org}"}})
    patient = store.create({"resourceType": "Patient", "name": [{"family": "Blanc"}], "gender": "female",
                            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Blanc</div>"},
                            "generalPractitioner": [{"reference": f"Practitioner/{doctor}"}],
                            "managingOrganization": {"reference": f"Organization/{org}"}})
    lonely = store.create({"resourceType": "Patient", "name": [{"family": "Seul"}]})

    def encounter(subject: str) -> str:
        return store.create({"resourceType": "Encounter", "status": "finished",
                             "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                             "subject": {"reference": f"Patient/{subject}"},
                             "participant": [{"individual": {"reference": f"PractitionerRole/{role}"}}]})

    base = str(store.fhir.base_url).rstrip("/")
    # References written with this server's absolute URL, and to two types at once.
    both = store.create({"resourceType": "Encounter", "status": "planned",
                         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HH"},
                         "subject": {"reference": f"{base}/Patient/{lonely}"},
                         "participant": [{"individual": {"reference": f"Practitioner/{doctor}"}},
                                         {"individual": {"reference": f"PractitionerRole/{role}"}}]})
    return {"org": org, "doctor": doctor, "role": role, "patient": patient, "lonely": lonely,
            "enc1": encounter(patient), "enc2": encounter(patient), "enc3": encounter(lonely), "both": both}


def included(bundle: dict[str, Any]) -> set[str]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in entries(bundle, "include")}


def test_include(store: Store, data: dict[str, str]) -> None:
    bundle = store.bundle("/Encounter", [("subject", f"Patient/{data['patient']}"), ("_include", "Encounter:subject")])
    assert match_ids(bundle) == {data["enc1"], data["enc2"]}
    assert included(bundle) == {f"Patient/{data['patient']}"}  # once, though both encounters point to it
    assert all(e["fullUrl"].endswith(f"/Patient/{data['patient']}") for e in entries(bundle, "include"))
    assert "_include=Encounter%3Asubject" in (link(bundle, "self") or "")


def test_has_follows_absolute_references_to_this_server(store: Store, data: dict[str, str]) -> None:
    assert store.ids("/Patient", {"_has:Encounter:subject:status": "planned"}) == {data["lonely"]}


def test_without_include_nothing_is_included(store: Store, data: dict[str, str]) -> None:
    assert included(store.bundle("/Encounter", {"subject": f"Patient/{data['patient']}"})) == set()


def test_include_with_target_type(store: Store, data: dict[str, str]) -> None:
    wanted = store.bundle("/Patient", [("_id", data["patient"]), ("_include", "Patient:general-practitioner:Practitioner")])
    assert included(wanted) == {f"Practitioner/{data['doctor']}"}
    other = store.bundle("/Patient", [("_id", data["patient"]), ("_include", "Patient:general-practitioner:Organization")])
    assert included(other) == set()


def test_include_several_and_wildcard(store: Store, data: dict[str, str]) -> None:
    both = store.bundle("/Patient", [("_id", data["patient"]), ("_include", "Patient:general-practitioner"),
                                     ("_include", "Patient:organization")])
    assert included(both) == {f"Practitioner/{data['doctor']}", f"Organization/{data['org']}"}
    star = store.bundle("/Patient", [("_id", data["patient"]), ("_include", "Patient:*")])
    assert included(star) == {f"Practitioner/{data['doctor']}", f"Organization/{data['org']}"}


def test_revinclude(store: Store, data: dict[str, str]) -> None:
    bundle = store.bundle("/Patient", [("_id", f"{data['patient']},{data['lonely']}"), ("_revinclude", "Encounter:subject")])
    assert match_ids(bundle) == {data["patient"], data["lonely"]}
    assert included(bundle) == {f"Encounter/{data[k]}" for k in ("enc1", "enc2", "enc3", "both")}
    only = store.bundle("/Patient", [("_id", data["patient"]), ("_revinclude", "Encounter:subject")])
    assert included(only) == {f"Encounter/{data['enc1']}", f"Encounter/{data['enc2']}"}


def test_include_target_type_is_matched_whole(store: Store, data: dict[str, str]) -> None:
    role_only = store.bundle("/Encounter", [("_id", data["both"]), ("_include", "Encounter:participant:PractitionerRole")])
    assert included(role_only) == {f"PractitionerRole/{data['role']}"}
    doctor_only = store.bundle("/Encounter", [("_id", data["both"]), ("_include", "Encounter:participant:Practitioner")])
    assert included(doctor_only) == {f"Practitioner/{data['doctor']}"}


def test_include_follows_absolute_references_to_this_server(store: Store, data: dict[str, str]) -> None:
    bundle = store.bundle("/Encounter", [("_id", data["both"]), ("_include", "Encounter:subject"), ("_include", "Encounter:participant")])
    assert included(bundle) == {f"Patient/{data['lonely']}", f"Practitioner/{data['doctor']}", f"PractitionerRole/{data['role']}"}


def test_include_iterate(store: Store, data: dict[str, str]) -> None:
    params = [("_id", data["enc3"]), ("_include", "Encounter:participant"),
              ("_include:iterate", "PractitionerRole:practitioner"), ("_include:iterate", "PractitionerRole:organization")]
    bundle = store.bundle("/Encounter", params)
    assert included(bundle) == {f"PractitionerRole/{data['role']}", f"Practitioner/{data['doctor']}", f"Organization/{data['org']}"}
    without = store.bundle("/Encounter", [p if p[0] != "_include:iterate" else ("_include", p[1]) for p in params])
    assert included(without) == {f"PractitionerRole/{data['role']}"}
    assert "_include%3Aiterate=PractitionerRole%3Apractitioner" in (link(bundle, "self") or "")


def test_revinclude_iterate(store: Store, data: dict[str, str]) -> None:
    # Practitioner <- PractitionerRole <- Encounter
    bundle = store.bundle("/Practitioner", [("_id", data["doctor"]), ("_revinclude", "PractitionerRole:practitioner"),
                                            ("_revinclude:iterate", "Encounter:participant")])
    expected = {f"Encounter/{data[k]}" for k in ("enc1", "enc2", "enc3", "both")}
    assert included(bundle) == {f"PractitionerRole/{data['role']}"} | expected


def test_bad_include_is_400(store: Store, data: dict[str, str]) -> None:
    assert store.get("/Patient", {"_include": "Patient"}, headers=STRICT).status_code == 400
    assert store.get("/Patient", {"_include": "Patient:gender"}, headers=STRICT).status_code == 400
    assert store.get("/Patient", {"_include:sideways": "Patient:organization"}, headers=STRICT).status_code == 400


def test_summary_count(store: Store, data: dict[str, str]) -> None:
    bundle = store.bundle("/Encounter", {"_summary": "count"})
    assert bundle["total"] == 4 and "entry" not in bundle


def test_summary_true_keeps_summary_elements_only(store: Store, data: dict[str, str]) -> None:
    bundle = store.bundle("/Patient", {"_id": data["patient"], "_summary": "true"})
    resource = entries(bundle, "match")[0]["resource"]
    assert resource["name"] == [{"family": "Blanc"}] and resource["gender"] == "female"
    assert "text" not in resource  # Patient.text is not a summary element
    assert any(t.get("code") == SUBSETTED for t in resource["meta"]["tag"])


def test_summary_data_drops_text(store: Store, data: dict[str, str]) -> None:
    resource = entries(store.bundle("/Patient", {"_id": data["patient"], "_summary": "data"}), "match")[0]["resource"]
    assert "text" not in resource and resource["generalPractitioner"]
    full = entries(store.bundle("/Patient", {"_id": data["patient"]}), "match")[0]["resource"]
    assert "text" in full and not any(t.get("code") == SUBSETTED for t in full["meta"]["tag"])


def test_summary_text_and_false(store: Store, data: dict[str, str]) -> None:
    text = entries(store.bundle("/Patient", {"_id": data["patient"], "_summary": "text"}), "match")[0]["resource"]
    assert set(text) == {"resourceType", "id", "meta", "text"}
    full = entries(store.bundle("/Patient", {"_id": data["patient"], "_summary": "false"}), "match")[0]["resource"]
    assert full["generalPractitioner"] and "text" in full


def test_elements(store: Store, data: dict[str, str]) -> None:
    resource = entries(store.bundle("/Patient", {"_id": data["patient"], "_elements": "gender,Patient.managingOrganization"}),
                       "match")[0]["resource"]
    assert set(resource) == {"resourceType", "id", "meta", "gender", "managingOrganization"}
    assert any(t.get("code") == SUBSETTED for t in resource["meta"]["tag"])


def test_bad_summary_is_400(store: Store, data: dict[str, str]) -> None:
    assert store.get("/Patient", {"_summary": "brief"}, headers=STRICT).status_code == 400
