"""Who is asking: the caller every request carries once its token is verified.

The kinds are those of issue 11 and DECISIONS ("Callers and identifiers"): a patient (INS), a
practitioner (IdNatPs, profession, organisation), a system (a registered client of an
organisation), an admin (operators) and the platform itself (migrations, tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fhir_server.security.scopes import Scopes

Kind = Literal["patient", "practitioner", "system", "admin", "platform"]
KINDS: tuple[Kind, ...] = ("patient", "practitioner", "system", "admin", "platform")
# IdNatPs, the national id of health professionals (ANS); Pro Santé Connect's SubjectNameID carries it.
IDNATPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
# INS-NIR, the national health identifier of a patient (ANS, Référentiel INS).
INS_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
# The INS systems a Patient's identifier may carry: INS-NIR and the test INS-NIA (ANS, Référentiel INS).
INS_SYSTEMS = (INS_SYSTEM, "urn:oid:1.2.250.1.213.1.4.10")


def idnatps(rpps: str) -> str:
    """The IdNatPs of an 11-digit RPPS ("8" + RPPS); a 12-digit IdNatPs starting with 8 is kept."""
    value = rpps.strip()
    if len(value) == 11 and value.isdigit():
        return "8" + value
    if len(value) == 12 and value.isdigit() and value.startswith("8"):
        return value
    raise ValueError(f"{rpps!r} is neither an 11-digit RPPS nor a 12-digit IdNatPs starting with 8")


@dataclass(frozen=True)
class Caller:
    kind: Kind
    # The token's subject: INS, IdNatPs, client id, or the kind itself for admin and platform.
    id: str
    scopes: Scopes
    ins: str | None = None
    idnatps: str | None = None
    # TRE_G15 profession code (e.g. 10 for a physician).
    profession: str | None = None
    # FINESS of the caller's organisation.
    organization: str | None = None
    client_id: str | None = None
    # What a system client is for, e.g. "insurer" (DECISIONS, "Callers and identifiers").
    role: str | None = None
    # Purpose of use, e.g. "BTG" for emergency access (break the glass).
    purpose_of_use: str | None = None
    # The patient the token is about (SMART launch context `patient`), if any.
    patient: str | None = None
    # The patient's agreement an app's token was granted under (fhir_server.apps.grants); revoking it
    # refuses the token.
    grant: str | None = None
    # The Patient resource id the patient context names, found once per request for callers with
    # patient/ scopes (fhir_server.access.patient_scope.resolve); None when none was found.
    record_patient: str | None = None
    issuer: str = ""
    # Signed with this server's own key (`fhir-server token`, the token endpoint), not by a
    # trusted outside issuer: only then may a system token of no organisation act as the platform.
    own_key: bool = False
    audiences: frozenset[str] = field(default_factory=frozenset)
    expires_at: float = 0.0

    @property
    def patient_context(self) -> str | None:
        """What `patient/` scopes are about: the launch context, or a patient caller's own INS."""
        return self.patient or (self.ins if self.kind == "patient" else None)


# The platform acting for itself with full access: command-line tools and migrations.
PLATFORM = Caller("platform", "platform", Scopes.parse("system/*.cruds"))
