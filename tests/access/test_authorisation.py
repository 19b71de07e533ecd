"""Who opens the record (issue 12, rules 1, 2, 4 and 9; DECISIONS "Access rules"): each form of
authorisation docs/ACCESS-RULES.md allows, each way it ends, and the patient managing their rules
with their own token: authorise, block, designate the médecin traitant, mask and unmask.

Every case reads the record of P with one professional's token: `open` (200, and which documents),
or refused (403 with an OperationOutcome).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.access.world import (CONSENT_CATEGORY, CONSENT_SCOPE, IDNATPS_SYSTEM, PHARMACIST, PHYSICIAN, REFUSED, TRE_A07,
                                World, bundle_ids, is_refusal, new_finess, now, open_world)
from tests.server_process import ServerProcess

PEOPLE = ("A", "C", "L", "X", "Y", "R1", "R2", "W", "Cw", "Z", "K", "G", "T2", "D", "Past", "Future")


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    world = open_world(server)
    for name in PEOPLE:
        world.practitioner(name, profession=PHARMACIST if name == "D" else PHYSICIAN)
    world.system("H", new_finess())
    t2 = world.professionals["T2"]
    world.patient_id, world.ins = world.patient()
    patient = world.get("platform", f"/Patient/{world.patient_id}").json()
    patient["generalPractitioner"] = [{"identifier": {"system": IDNATPS_SYSTEM, "value": t2.idnatps}}]
    assert world.request("platform", "PUT", f"/Patient/{world.patient_id}", json=patient).status_code == 200
    world.patients["other"], _ = world.patient()
    world.patient_caller("P", world.ins)
    for name in ("A", "C", "K", "D"):
        world.consent(world.patient_id, "permit", world.professionals[name])
    world.consent(world.patient_id, "deny", world.professionals["C"])
    world.consent(world.patients["other"], "permit", world.professionals["X"])
    _consent(world, "permit", {"identifier": {"system": IDNATPS_SYSTEM, "value": world.professionals["L"].idnatps}})
    _consent(world, "permit", {"reference": f"Practitioner/{world.professionals['Y'].practitioner_id}"}, status="draft")
    for name, period in (("Past", {"start": "2020-01-01", "end": "2021-01-01"}), ("Future", {"start": "2999-01-01"})):
        consent_id = world.consent(world.patient_id, "permit", world.professionals[name])
        consent = world.get("platform", f"/Consent/{consent_id}").json()
        consent["provision"]["period"] = period
        assert world.request("platform", "PUT", f"/Consent/{consent_id}", json=consent).status_code == 200
    for name in ("R1", "R2"):
        world.consents[name] = world.consent(world.patient_id, "permit", world.professionals[name])
    world.deposit("plain", "H")
    world.deposit("masked", "H", labels=("MASQUE_PS",))
    world.deposit("to_mask", "H")
    world.deposit("invisible", "H", labels=("INVISIBLE_PATIENT",))
    yield world
    world.http.close()


def _consent_body(world: World, kind: str, actor: dict[str, Any], status: str = "active") -> dict[str, Any]:
    """A privacy Consent whose actor is written as given (a reference or a logical identifier)."""
    provision: dict[str, Any] = {"type": kind, "actor": [{
        "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PRCP"}]},
        "reference": actor}]}
    return {"resourceType": "Consent", "status": status, "scope": CONSENT_SCOPE, "category": CONSENT_CATEGORY,
            "patient": {"reference": f"Patient/{world.patient_id}"}, "dateTime": now(), "provision": provision}


def _consent(world: World, kind: str, actor: dict[str, Any], status: str = "active", caller: str = "platform") -> str:
    return world.create(_consent_body(world, kind, actor, status), caller)


def _sees(world: World, caller: str) -> set[str] | str:
    response = world.get(caller, "/DocumentReference", params={"patient": world.patient_id})
    if is_refusal(response):
        return REFUSED
    assert response.status_code == 200, response.text
    return {k for k in (world.key_of(i) for i in bundle_ids(response.json())) if k}


NOT_MASKED = {"plain", "to_mask", "invisible"}


@pytest.mark.parametrize(("caller", "sees"), [
    ("A", NOT_MASKED),          # permit Consent naming Practitioner/{id}
    ("L", NOT_MASKED),          # permit Consent naming the IdNatPs (logical reference)
    ("T2", NOT_MASKED | {"masked"}),  # médecin traitant designated by IdNatPs: no Consent needed
    ("C", REFUSED),             # permit and deny: the block wins
    ("X", REFUSED),             # authorised by another patient only
    ("Y", REFUSED),             # a draft Consent authorises nobody
    ("W", REFUSED),             # never authorised
    ("Past", REFUSED),          # a permit whose period has ended
    ("Future", REFUSED),        # a permit whose period has not begun
])
def test_who_opens_the_record(world: World, caller: str, sees: set[str] | str) -> None:
    assert _sees(world, caller) == sees


def test_a_deleted_consent_no_longer_authorises(world: World) -> None:
    assert _sees(world, "R1") == NOT_MASKED
    consent = world.consents["R1"]
    assert world.request("platform", "DELETE", f"/Consent/{consent}").status_code in (200, 204)
    assert _sees(world, "R1") == REFUSED


def test_a_consent_no_longer_active_no_longer_authorises(world: World) -> None:
    assert _sees(world, "R2") == NOT_MASKED
    consent_id = world.consents["R2"]
    consent = world.get("platform", f"/Consent/{consent_id}").json()
    assert world.request("platform", "PUT", f"/Consent/{consent_id}", json={**consent, "status": "inactive"}).status_code == 200
    assert _sees(world, "R2") == REFUSED


def test_a_professional_may_record_the_patients_authorisation(world: World) -> None:
    """DECISIONS: the professional declares the patient agreed (a Consent they write); audited."""
    assert _sees(world, "W") == REFUSED
    _consent(world, "permit", {"reference": f"Practitioner/{world.professionals['W'].practitioner_id}"}, caller="W")
    assert _sees(world, "W") == NOT_MASKED


def test_a_professional_cannot_authorise_someone_else(world: World) -> None:
    """Dr A, authorised, writes a permit naming Dr X: refused, and Dr X stays refused."""
    response = world.request("A", "POST", "/Consent", json=_consent_body(
        world, "permit", {"reference": f"Practitioner/{world.professionals['X'].practitioner_id}"}))
    assert response.status_code == 403, response.text
    assert _sees(world, "X") == REFUSED


def test_nobody_overrides_a_block(world: World) -> None:
    """A blocked professional declaring an authorisation for themself stays blocked."""
    world.consent(world.patient_id, "deny", world.professionals["Cw"])
    response = world.request("Cw", "POST", "/Consent", json=_consent_body(
        world, "permit", {"reference": f"Practitioner/{world.professionals['Cw'].practitioner_id}"}))
    assert response.status_code == 403, response.text
    assert _sees(world, "Cw") == REFUSED


def test_the_patient_authorises_and_blocks_with_their_own_token(world: World) -> None:
    assert _sees(world, "Z") == REFUSED
    _consent(world, "permit", {"reference": f"Practitioner/{world.professionals['Z'].practitioner_id}"}, caller="P")
    assert _sees(world, "Z") == NOT_MASKED
    assert _sees(world, "K") == NOT_MASKED
    _consent(world, "deny", {"reference": f"Practitioner/{world.professionals['K'].practitioner_id}"}, caller="P")
    assert _sees(world, "K") == REFUSED


def test_the_patient_designates_their_medecin_traitant(world: World) -> None:
    assert _sees(world, "G") == REFUSED
    patient = world.get("P", f"/Patient/{world.patient_id}").json()
    patient["generalPractitioner"] = [*patient.get("generalPractitioner", []),
                                      {"reference": f"Practitioner/{world.professionals['G'].practitioner_id}"}]
    response = world.request("P", "PUT", f"/Patient/{world.patient_id}", json=patient)
    assert response.status_code == 200, response.text
    assert _sees(world, "G") == NOT_MASKED | {"masked"}


def _labels(document: dict[str, Any]) -> set[str]:
    return {c["code"] for label in document.get("securityLabel", []) for c in label.get("coding", [])}


def _relabel(world: World, caller: str, key: str, add: str | None = None, remove: str | None = None) -> Any:
    document = world.get(caller, f"/DocumentReference/{world.documents[key].id}").json()
    labels = [label for label in document.get("securityLabel", [])
              if not any(c.get("code") == remove for c in label.get("coding", []))]
    if add:
        labels.append({"coding": [{"system": TRE_A07, "code": add}]})
    return world.request(caller, "PUT", f"/DocumentReference/{world.documents[key].id}",
                         json={**document, "securityLabel": labels})


def test_the_patient_masks_and_unmasks_a_document(world: World) -> None:
    """Dr D (authorised, not the author) loses the document while it is masked; the other labels stay."""
    assert "to_mask" in _sees(world, "D")
    masked = _relabel(world, "P", "to_mask", add="MASQUE_PS")
    assert masked.status_code == 200, masked.text
    assert "to_mask" not in _sees(world, "D")
    assert world.get("D", f"/DocumentReference/{world.documents['to_mask'].id}").status_code == 404
    stored = world.get("platform", f"/DocumentReference/{world.documents['to_mask'].id}").json()
    assert _labels(stored) >= {"MASQUE_PS", "N"}
    unmasked = _relabel(world, "P", "to_mask", remove="MASQUE_PS")
    assert unmasked.status_code == 200, unmasked.text
    assert "to_mask" in _sees(world, "D")


def test_masque_ps_with_invisible_patient_is_refused(world: World) -> None:
    """Issue 12 rule 9: MASQUE_PS together with INVISIBLE_PATIENT is refused (default configuration)."""
    response = _relabel(world, "H", "invisible", add="MASQUE_PS")
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "MASQUE_PS" not in _labels(world.get("platform", f"/DocumentReference/{world.documents['invisible'].id}").json())
