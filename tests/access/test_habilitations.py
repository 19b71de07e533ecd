"""The habilitation matrix (policies/habilitations.json): its codes are the ones the DMP uses, and
the classes it yields keep each profession to its documents (issue 12, rule 3).

Pure data tests: the store query that uses these classes is tested over HTTP by the access suite.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhir_server.access.habilitations import POLICY_FILE, document_class, load, profession_classes
from fhir_server.config import PROJECT_ROOT

J07 = PROJECT_ROOT / "profiles" / "ValueSet" / "ValueSet-JDV-J07-XdsTypeCode-CISIS.json"
G15 = PROJECT_ROOT / "profiles" / "CodeSystem" / "CodeSystem-TRE-G15-ProfessionSante.json"
LOINC = "http://loinc.org"
TRE_A05 = "https://mos.esante.gouv.fr/NOS/TRE_A05-TypeDocComplementaire/FHIR/TRE-A05-TypeDocComplementaire"
RESIDENCE_CERTIFICATE = {"system": TRE_A05, "code": "ATTEST-RESID"}
HOSPITAL_REPORT = {"system": LOINC, "code": "34112-3"}
CONSULTATION_REPORT = {"system": LOINC, "code": "11488-4"}
PSYCHIATRIC_SYNTHESIS = {"system": LOINC, "code": "68599-0"}
MEDICAL_CERTIFICATE = {"system": LOINC, "code": "89601-9"}
SUPPORT_PLAN = {"system": LOINC, "code": "80788-3"}


def _matrix_file() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(POLICY_FILE.read_text(encoding="utf-8"))
    return data


def _j07_displays() -> dict[tuple[str, str], str]:
    value_set = json.loads(J07.read_text(encoding="utf-8"))
    return {(include["system"], concept["code"]): concept["display"]
            for include in value_set["compose"]["include"] for concept in include["concept"]}


def _every_coding_in_file() -> list[dict[str, str]]:
    data = _matrix_file()
    return data["documentTypes"] + [c for rule in data["professions"].values() for c in rule.get("except", [])]


def _all_classes() -> set[str]:
    """Every class a stored document can have: one per JDV_J07 type, and the class of an untyped one."""
    return {document_class([{"system": s, "code": c}]) for s, c in _j07_displays()} | {document_class([])}


def test_every_coding_is_a_jdv_j07_document_type_with_its_label() -> None:
    displays = _j07_displays()
    for coding in _every_coding_in_file():
        assert displays.get((coding["system"], coding["code"])) == coding["display"], coding


def test_every_profession_is_an_active_tre_g15_code() -> None:
    code_system = json.loads(G15.read_text(encoding="utf-8"))
    assert _matrix_file()["professionSystem"] == code_system["url"]
    active = {c["code"] for c in code_system["concept"]
              if {"code": "status", "valueCode": "deprecated"} not in c.get("property", [])}
    displays = {c["code"]: c["display"] for c in code_system["concept"]}
    for profession, rule in _matrix_file()["professions"].items():
        assert profession in active
        assert rule["display"] == displays[profession]


def test_the_professions_of_issue_12_each_have_a_row() -> None:
    # Physicians, pharmacists, dentists, midwives, nurses, physiotherapists.
    assert {"10", "21", "40", "50", "60", "70"} <= set(_matrix_file()["professions"])


def test_physicians_see_all_types_but_the_residence_certificate() -> None:
    physicians = _matrix_file()["professions"]["10"]
    assert physicians["sees"] == "all"
    assert [{"system": c["system"], "code": c["code"]} for c in physicians["except"]] == [RESIDENCE_CERTIFICATE]


def test_a_physician_gets_every_class_but_the_residence_certificates() -> None:
    residence = document_class([RESIDENCE_CERTIFICATE])
    physician = profession_classes("10")
    for document in _all_classes():
        assert (document in physician) == (document != residence), document


def test_a_pharmacist_does_not_get_the_class_of_a_type_outside_their_subset() -> None:
    pharmacist = profession_classes("21")
    assert document_class([HOSPITAL_REPORT]) in pharmacist
    assert document_class([RESIDENCE_CERTIFICATE]) not in pharmacist
    assert document_class([PSYCHIATRIC_SYNTHESIS]) not in pharmacist


def test_the_exceptions_the_sources_name_hide_those_types() -> None:
    assert document_class([MEDICAL_CERTIFICATE]) not in profession_classes("60")  # nurse
    assert document_class([SUPPORT_PLAN]) not in profession_classes("40")  # dentist
    assert document_class([SUPPORT_PLAN]) in profession_classes("60")
    assert document_class([MEDICAL_CERTIFICATE]) in profession_classes("40")


def test_types_seen_by_the_same_professions_share_one_class() -> None:
    assert document_class([HOSPITAL_REPORT]) == document_class([CONSULTATION_REPORT])
    assert document_class([HOSPITAL_REPORT]) != document_class([MEDICAL_CERTIFICATE])
    assert len(_all_classes()) <= 8  # a short $in in every professional's query


def test_an_untyped_or_unlisted_document_is_seen_by_physicians_only() -> None:
    unlisted = document_class([{"system": "urn:oid:1.2.3", "code": "local"}])
    assert unlisted == document_class([])
    for profession in ("21", "40", "50", "60", "70"):
        assert unlisted not in profession_classes(profession)
    assert unlisted in profession_classes("10")


def test_a_local_coding_beside_a_listed_one_does_not_change_the_class() -> None:
    local = {"system": "urn:oid:1.2.3", "code": "CRH"}
    assert document_class([local, HOSPITAL_REPORT]) == document_class([HOSPITAL_REPORT])


def test_two_listed_codings_give_the_professions_allowed_both() -> None:
    both = document_class([SUPPORT_PLAN, MEDICAL_CERTIFICATE])
    assert both not in profession_classes("40")  # no support plan for dentists
    assert both not in profession_classes("60")  # no certificate for nurses
    assert both in profession_classes("21")
    assert both in profession_classes("10")


@pytest.mark.parametrize("profession", [None, "80", "", "10,21"])
def test_a_profession_the_matrix_does_not_name_sees_no_document(profession: str | None) -> None:
    assert profession_classes(profession) == ("*",)


def test_classes_are_sorted_with_the_non_document_class() -> None:
    for profession in _matrix_file()["professions"]:
        classes = profession_classes(profession)
        assert classes == tuple(sorted(classes))
        assert "*" in classes


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "habilitations.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_an_exception_outside_the_listed_types_is_refused(tmp_path: Path) -> None:
    data = _matrix_file()
    data["professions"]["60"]["except"].append({"system": LOINC, "code": "00000-0", "display": "typo"})
    with pytest.raises(ValueError, match="00000-0"):
        load(_write(tmp_path, data))


def test_an_unknown_sees_value_is_refused(tmp_path: Path) -> None:
    data = _matrix_file()
    data["professions"]["21"]["sees"] = "most"
    with pytest.raises(ValueError, match="most"):
        load(_write(tmp_path, data))


def test_a_type_listed_twice_is_refused(tmp_path: Path) -> None:
    data = _matrix_file()
    data["documentTypes"].append(dict(data["documentTypes"][0]))
    with pytest.raises(ValueError, match="twice"):
        load(_write(tmp_path, data))
