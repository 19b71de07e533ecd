"""The access matrix of issue 12: every caller of the rules against every path, over HTTP with
real tokens, on one record holding one document of each kind.

The record of patient P (active, médecin traitant Dr T):
- plain: a discharge letter deposited by hospital H;
- masked_a: masked (MASQUE_PS), deposited by Dr A (the author sees it);
- masked_h: masked, deposited by hospital H, authored by H's organisation (its professionals see it);
- inv_patient: INVISIBLE_PATIENT (not the patient, not their representatives, for a month);
- inv_rep: INVISIBLE_REPRESENTANTS_LEGAUX (not the representatives);
- residence: a residence certificate (no physician's habilitation covers it);
- psychiatric: a psychiatric synthesis (outside the pharmacist's habilitation);
- by_b: deposited by Dr B, whom the patient never authorised.

Each test asks one caller one path, and compares what it learnt with what the rules let it see.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.access.paths import NO_DOCUMENTS, PATHS
from tests.access.world import (PHARMACIST, PSYCHIATRIC, REFUSED, RESIDENCE, World, bundle_ids, new_finess, new_ins,
                                open_world, says_authorisation_missing)
from tests.server_process import ServerProcess, server_token

ALL = frozenset({"plain", "masked_a", "masked_h", "inv_patient", "inv_rep", "residence", "psychiatric", "by_b"})
MASKED = frozenset({"masked_a", "masked_h"})
# Documents outside the pharmacist's habilitation (policies/habilitations.json); the discharge
# letter is inside every profession's.
NOT_PHARMACIST = frozenset({"residence", "psychiatric"})

# What each caller may see of the record, REFUSED for the record-level refusal (403).
VISIBLE: dict[str, frozenset[str] | str] = {
    "platform": ALL,
    # Authorised physician, author of masked_a.
    "A": ALL - {"masked_h", "residence"},
    # Authorised physician of hospital H's organisation: H's masked document is theirs.
    "F": ALL - {"masked_a", "residence"},
    # Médecin traitant: authorised by the designation, sees masked documents.
    "T": ALL - {"residence"},
    # Authorised pharmacist.
    "D": ALL - MASKED - NOT_PHARMACIST,
    # Not authorised, but deposited by_b: keeps their own document.
    "B": frozenset({"by_b"}),
    # Not authorised, breaking the glass: all but masked documents.
    "E_btg": ALL - MASKED - {"residence"},
    # Hospital system: what its organisation deposited.
    "H": frozenset({"plain", "masked_h", "inv_patient", "inv_rep", "residence", "psychiatric"}),
    # Another hospital's system: nothing deposited, nothing seen.
    "H2": frozenset(),
    # The patient: all but INVISIBLE_PATIENT (deposited less than a month ago).
    "P": ALL - {"inv_patient"},
    # A parent of the (minor) patient.
    "R": ALL - {"inv_patient", "inv_rep"},
    # Not authorised, never deposited.
    "N": REFUSED,
    # The same, without breaking the glass.
    "E": REFUSED,
    # Blocked (a deny Consent), though also authorised by a permit Consent; and in an emergency.
    "C": REFUSED,
    "C_btg": REFUSED,
    # A person whose token names the patient as launch context without being their representative.
    "S": REFUSED,
    # A friend (RelatedPerson, relationship not parent or guardian) with the patient as context.
    "friend": REFUSED,
}
# Callers who see only what they (or their organisation) deposited see the Patient itself only in
# a record their request names (to deposit and update demographics), not across records.
WITHOUT_PATIENT = frozenset({"B", "H", "H2"})
# What a search naming no patient (`_id`, system search, `_has`, type and system history) finds,
# where it differs from the record named: it looks in every record the caller may open.
UNNAMED: dict[str, frozenset[str] | str] = {
    # Breaking the glass opens the record a request names, never every record of the country.
    "E_btg": frozenset(),
    # Nor do one's own deposits in a record one may not otherwise open: a search across records is
    # one set of conditions for all of them, never an `$or` (../shared/DECISIONS.md, "Access rules").
    "B": frozenset(),
}


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    world = open_world(server)
    finess_h = new_finess()
    for name in ("A", "B", "C", "E", "N", "T"):
        world.practitioner(name)
    world.practitioner("F", organization=finess_h)
    world.practitioner("D", profession=PHARMACIST)
    world.emergency("E_btg", "E")
    world.emergency("C_btg", "C")
    world.system("H", finess_h)
    world.system("H2", new_finess())
    world.patient_id, world.ins = world.patient(general_practitioner=world.professionals["T"].practitioner_id)
    for name in ("A", "F", "D", "C"):
        world.consent(world.patient_id, "permit", world.professionals[name])
    world.consent(world.patient_id, "deny", world.professionals["C"])
    world.patient_caller("P", world.ins)
    parent, friend = new_ins(), new_ins()
    world.representative(world.patient_id, parent, "PRN")
    world.representative(world.patient_id, friend, "FRND")
    world.patient_caller("R", parent, context=world.patient_id)
    world.patient_caller("friend", friend, context=world.patient_id)
    world.patient_caller("S", new_ins(), context=world.patient_id)
    world.deposit("plain", "H")
    world.deposit("masked_a", "A", labels=("MASQUE_PS",), author=world.professionals["A"])
    world.deposit("masked_h", "H", labels=("MASQUE_PS",), author_organisation=finess_h)
    world.deposit("inv_patient", "H", labels=("INVISIBLE_PATIENT",))
    world.deposit("inv_rep", "H", labels=("INVISIBLE_REPRESENTANTS_LEGAUX",))
    world.deposit("residence", "H", doc_type=RESIDENCE)
    world.deposit("psychiatric", "H", doc_type=PSYCHIATRIC)
    world.deposit("by_b", "B", author=world.professionals["B"])
    yield world
    world.http.close()


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("caller", list(VISIBLE))
def test_caller_sees_what_the_rules_allow(world: World, caller: str, path: str) -> None:
    rule = PATHS[path]
    want = VISIBLE[caller]
    if not rule.names_record:
        want = UNNAMED.get(caller, frozenset() if want == REFUSED else want)
    if (path in NO_DOCUMENTS and want != REFUSED) or (rule.through_patient and caller in WITHOUT_PATIENT):
        want = frozenset()
    assert rule.run(world, caller) == (len(want) if rule.counts and not isinstance(want, str) else want)


@pytest.mark.parametrize("caller", ["N", "E", "C", "C_btg", "S", "friend"])
def test_refusal_says_the_authorisation_is_missing(world: World, caller: str) -> None:
    """The 403 is what practitioner software shows its user: an OperationOutcome saying why."""
    response = world.get(caller, "/DocumentReference", params={"patient": world.patient_id})
    assert response.status_code == 403, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    if caller in ("N", "E"):
        assert says_authorisation_missing(response), response.text


@pytest.mark.parametrize(("caller", "finds"), [
    ("A", True), ("T", True), ("P", True), ("R", True), ("platform", True),
    # Never authorised, never deposited: the patient's demographics are not theirs to search.
    ("N", False), ("H2", False), ("E_btg", False)])
def test_searching_patients_by_name_finds_only_records_the_caller_may_open(world: World, caller: str, finds: bool) -> None:
    """`Patient?family=` names no record: it must not turn the store into a directory of every
    patient for a caller who may open none of theirs."""
    response = world.get(caller, "/Patient", params={"family": f"Acces{world.unique}"})
    assert response.status_code in (200, 403), response.text
    found = response.status_code == 200 and world.patient_id in bundle_ids(response.json(), "Patient")
    assert found == finds


def test_a_system_client_of_no_organisation_is_not_the_platform_when_it_is_an_insurer(world: World) -> None:
    """An insurer (DECISIONS: a system client with role `insurer`) has no organisation in the
    sense of a care establishment; the rules give it no access to the record, whatever the
    "system token without an organisation acts as the platform" convenience says."""
    world.tokens["insurer"] = server_token(world.server.data_dir, world.server.base_url, "system",
                                           client_id=f"insurer-{world.unique}", role="insurer")
    seen: set[str] = set()
    for path, params in (("/DocumentReference", {"patient": world.patient_id}),
                         ("/DocumentReference", {"_id": ",".join(d.id for d in world.documents.values())}),
                         ("/DocumentReference/_history", {"_since": world.started, "_count": "200"})):
        response = world.get("insurer", path, params=params)
        assert response.status_code in (200, 403), response.text
        if response.status_code == 200:
            seen |= {k for k in (world.key_of(i) for i in bundle_ids(response.json())) if k}
    for document in world.documents.values():
        if world.get("insurer", f"/Binary/{document.binary_id}", headers={"Accept": "*/*"}).status_code == 200:
            seen.add(f"binary of {world.key_of(document.id)}")
    assert seen == set()
