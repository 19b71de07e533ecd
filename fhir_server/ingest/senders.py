"""Who may send HL7 v2 over MLLP: the listener has no bearer token, so the sender is the caller.

A message is accepted from a sending facility (MSH-4, or MSH-3^MSH-4) registered to a system
client (`fhir-server clients add --hl7-sender`), which then writes with that client's scopes, or
named in FHIR_MLLP_SENDERS (comma-separated; `*` accepts any sender, for local trials), which
writes as the organisation of its sending facility: the FINESS `fhir-server facilities add`
configured for its MSH-4, else its MSH-4 itself. Never as the platform, which the access rules
let read and write every record (a closed or opposed one too). Anyone else gets AR with an ERR
segment and nothing is stored.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fhir_server import facilities
from fhir_server.ingest.hl7v2.ack import MessageHeader, build_ack, read_header
from fhir_server.ingest.hl7v2.errors import Hl7Error
from fhir_server.ingest.hl7v2.intake import FORBIDDEN_CONDITION, handle_message
from fhir_server.ingest.mllp import Handler
from fhir_server.operations.transaction import TransactionService
from fhir_server.security.callers import Caller
from fhir_server.security.clients import ClientRegistry
from fhir_server.security.scopes import Scopes
from fhir_server.security.tokens import default_scopes

if TYPE_CHECKING:
    from fhir_server.interactions.search import SearchInteraction
    from fhir_server.storage.repository import Repository

ANY = "*"
logger = logging.getLogger(__name__)


def _names(header: MessageHeader) -> list[str]:
    component = header.delimiters.component
    facility = header.sending_facility.split(component, 1)[0]
    application = header.sending_application.split(component, 1)[0]
    return [n for n in (facility, f"{application}^{facility}" if application and facility else "") if n]


@dataclass
class MllpSenders:
    allowed: frozenset[str]
    clients: ClientRegistry

    @classmethod
    def from_setting(cls, value: str, clients: ClientRegistry) -> MllpSenders:
        """From FHIR_MLLP_SENDERS (fhir_server.config.Settings.mllp_senders)."""
        names = [n.strip() for n in value.split(",") if n.strip()]
        return cls(frozenset(names), clients)

    def caller(self, header: MessageHeader) -> Caller | None:
        """The caller a message of this header writes as, None when its sender is not allowed."""
        names = _names(header)
        for name in names:
            client = self.clients.by_sender.get(name)
            if client is not None:
                return Caller(kind="system", id=client.client_id, scopes=Scopes.parse(client.scope),
                              organization=client.finess, client_id=client.client_id, role=client.role)
        allowed = [n for n in names if n in self.allowed] or (["any"] if ANY in self.allowed else [])
        if not allowed:
            return None
        return Caller(kind="system", id=f"mllp:{allowed[0]}", scopes=Scopes.parse(default_scopes("system")))

    def handler(self, repository: Repository, search: SearchInteraction) -> Handler:
        async def handle(message: bytes) -> bytes:
            header = read_header(message)
            caller = self.caller(header)
            if caller is None:
                shown = header.sending_facility or "(empty MSH-4)"
                error = Hl7Error("AR", FORBIDDEN_CONDITION, f"sender {shown} is not allowed to send to this server "
                                 "(register it with fhir-server clients add --hl7-sender, or list it in FHIR_MLLP_SENDERS)",
                                 "MSH^1^4")
                return build_ack(header, "AR", error)
            service = TransactionService(repository, search, caller)
            try:
                service.caller = await _as_facility(caller, header, service.find_by_identifier, repository.facilities)
            except Exception:
                # As intake answers any failure: an AE the sender retries, never a silent close.
                logger.exception("MLLP %s: sending facility not looked up", header.control_id)
                return build_ack(header, "AE", Hl7Error("AE", "207", "internal error while processing the message"))
            return (await handle_message(message, service)).ack

        return handle


async def _as_facility(caller: Caller, header: MessageHeader, search: facilities.Search,
                       remembered: facilities.Remembered) -> Caller:
    """A listed sender, which no client registration gives an organisation, as its sending facility's."""
    if caller.organization is not None:
        return caller
    names = [n for n in header.sending_facility.split(header.delimiters.component)[:2] if n]
    facility = await facilities.find(search, [facilities.sending_facility_identifier(n) for n in names], remembered)
    organization = facility.finess if facility is not None and facility.finess else f"MSH-4:{names[0] if names else ''}"
    return dataclasses.replace(caller, organization=organization)
