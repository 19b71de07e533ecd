"""The access matrix of issue 12: every caller of the rules against every path, over HTTP with
real tokens, on one record holding one document of each kind.

The record of patient P (active, médecin traitant Dr T):
- plain: a discharge letter deposited by hospital H;
- masked_a: masked (MASQUE_PS), deposited by Dr A (the author sees it);
- masked_h: masked, deposited by hospital H (professionals of H's organisation see it);
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

from tests.access.paths import PATHS, expected
from tests.access.world import (PHARMACIST, PSYCHIATRIC, REFUSED, RESIDENCE, World, new_finess, new_ins, open_world,
                                says_authorisation_missing)
from tests.server_process import ServerProcess

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
# Breaking the glass opens the record the request names, never every record of the country: a
# search naming no patient finds nothing through it.
# Nor do one's own deposits in a record one may not otherwise open: a search across records is one
# set of conditions for all of them, never an `$or` (../shared/DECISIONS.md, "Access rules").
NAMED_ONLY = frozenset({"E_btg", "B"})


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
    world.deposit("masked_h", "H", labels=("MASQUE_PS",))
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
    want = expected(rule, VISIBLE[caller], caller not in WITHOUT_PATIENT, caller in NAMED_ONLY)
    assert rule.run(world, caller) == want


@pytest.mark.parametrize("caller", ["N", "E", "C", "C_btg", "S", "friend"])
def test_refusal_says_the_authorisation_is_missing(world: World, caller: str) -> None:
    """The 403 is what practitioner software shows its user: an OperationOutcome saying why."""
    response = world.get(caller, "/DocumentReference", params={"patient": world.patient_id})
    assert response.status_code == 403, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    if caller in ("N", "E"):
        assert says_authorisation_missing(response), response.text
