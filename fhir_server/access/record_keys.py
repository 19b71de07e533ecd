"""The keys each stored version carries for the access rules (docs/ACCESS-RULES.md), next to `pat`:
who deposited it, its habilitation class, who may see it masked, and from when the patient and
their legal representatives may see it. The rules' conditions are equalities (and one `$lte` on a
date) on these scalars, so the store answers them inside one record without `$or` or `$not`
(../shared/DECISIONS.md, "Access rules").
"""

from __future__ import annotations

import calendar
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fhir_server.access import habilitations, participants
from fhir_server.security.callers import IDNATPS_SYSTEM, Caller
from fhir_server.storage.documents import Stored
from fhir_server.timefmt import format_instant, instant, now

if TYPE_CHECKING:
    from fhir_server.storage.repository import Reader

# TRE_A07, the DMP's document visibility statuses (ANS, NOS).
VISIBILITY_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
MASKED = "MASQUE_PS"
INVISIBLE_PATIENT = "INVISIBLE_PATIENT"
INVISIBLE_REPRESENTATIVES = "INVISIBLE_REPRESENTANTS_LEGAUX"
# FINESS of an organisation (ANS).
FINESS_SYSTEMS = ("urn:oid:1.2.250.1.71.4.2.2",)
VISIBLE = "all"
# Every resource that is not a document is in this habilitation class, which every caller sees.
ANY_CLASS = "*"
# Dates are compared as `instant` strings ("t" + ISO instant): the embedded store reads a bare ISO
# date as a date and then compares it with no string, so `$lte` on bare dates answers wrongly
# (docs/EMBEDDED-STORE.md). "t" alone is before every instant: always.
ALWAYS = instant("")
# Later than any instant: never (the representatives of an INVISIBLE_REPRESENTANTS_LEGAUX document).
NEVER = instant("9999")


def depositor(caller: Caller) -> str:
    """Who deposits: the professional, the organisation, the client, the patient, or the platform."""
    if caller.kind == "practitioner" and caller.idnatps:
        return f"ps:{caller.idnatps}"
    if caller.kind == "system":
        return f"org:{caller.organization}" if caller.organization else f"client:{caller.client_id}"
    if caller.kind == "patient" and caller.ins:
        return f"pt:{caller.ins}"
    return caller.kind


def labels(resource: dict[str, Any]) -> set[str]:
    """The TRE_A07 codes of `securityLabel` (DocumentReference) and `meta.security` (any resource)."""
    found: set[str] = set()
    concepts = [c for c in resource.get("securityLabel") or [] if isinstance(c, dict)]
    codings = [x for c in concepts for x in c.get("coding") or [] if isinstance(x, dict)]
    codings += [x for x in (resource.get("meta") or {}).get("security") or [] if isinstance(x, dict)]
    for coding in codings:
        if coding.get("system") == VISIBILITY_SYSTEM and isinstance(coding.get("code"), str):
            found.add(coding["code"])
    return found


def one_month_after(moment: datetime) -> str:
    """The same day of the next month, or its last day when shorter (31 January -> 28/29 February)."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return instant(format_instant(moment.replace(year=year, month=month, day=day)))


def _author(resource: dict[str, Any], dep: str) -> str:
    """Who sees a masked document besides the médecin traitant (issue 12, rule 4): for an
    establishment's document (deposited by its system) the organisation; otherwise its author
    professional (IdNatPs), else its author organisation (FINESS), else whoever deposited it."""
    if dep.startswith("org:"):
        return dep
    contained = {f"#{c.get('id')}": c for c in resource.get("contained") or [] if isinstance(c, dict)}
    people: list[str] = []
    organisations: list[str] = []
    for author in resource.get("author") or []:
        if not isinstance(author, dict):
            continue
        target = contained.get(author.get("reference") or "", {})
        identifiers = [author.get("identifier") or {}, *(target.get("identifier") or [])]
        if target.get("resourceType") == "PractitionerRole":
            practitioner = contained.get((target.get("practitioner") or {}).get("reference") or "", {})
            identifiers += [(target.get("practitioner") or {}).get("identifier") or {}, *(practitioner.get("identifier") or [])]
        for identifier in identifiers:
            if not isinstance(identifier, dict) or not isinstance(identifier.get("value"), str):
                continue
            if identifier.get("system") == IDNATPS_SYSTEM:
                people.append(f"ps:{identifier['value']}")
            elif identifier.get("system") in FINESS_SYSTEMS:
                organisations.append(f"org:{identifier['value']}")
    return (people or organisations or [dep])[0]


async def keys(caller: Caller, resource_type: str, resource: dict[str, Any] | None, current: Stored | None,
               context: Stored | None, reader: Reader) -> dict[str, Any]:
    if resource is None:
        # A deletion is seen as the version it ends was.
        return dict(current.keys) if current is not None else {"dep": depositor(caller)}
    if context is not None:
        # A Binary is seen as the resource its securityContext names, a submission set as its document.
        return {k: v for k, v in context.keys.items() if k != "ctx"}
    # The first depositor stays the depositor whoever updates it.
    dep = (current.keys.get("dep") if current is not None else None) or depositor(caller)
    found = labels(resource)
    hab = ANY_CLASS
    if resource_type == "DocumentReference":
        hab = habilitations.document_class((resource.get("type") or {}).get("coding") or [])
    vfp = ALWAYS
    if INVISIBLE_PATIENT in found:
        # One month after the deposit that labelled it; an update keeping the label keeps the date.
        kept = current.keys.get("vfp") if current is not None and not current.deleted else None
        vfp = kept if kept and kept != ALWAYS else one_month_after(now())
    keys: dict[str, Any] = {
        "dep": dep,
        "hab": hab,
        "vis": _author(resource, dep) if MASKED in found else VISIBLE,
        "vfp": vfp,
        "vfr": NEVER if INVISIBLE_REPRESENTATIVES in found else vfp,
    }
    if resource_type in participants.types():
        # Who takes part (policies/participants.json): an array, never indexed (docs/EMBEDDED-STORE.md).
        # A reference by id is resolved now, in the write's transaction (participants.resolve).
        keys["par"] = await participants.keys_of(reader, resource_type, resource)
    return keys
