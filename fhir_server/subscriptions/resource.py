"""The Subscription resource as this server accepts it, and who it belongs to.

- before write (`accept`): a Subscription meant to deliver (any status but `off`) names a channel
  this server runs (`rest-hook` with an endpoint the outbound policy allows, fhir_server.outbound,
  or `websocket`), a payload it can send
  (none, or `application/fhir+json`), and criteria `Type?search` the caller may search; `requested`
  becomes `active` (R4: the server sets it once it accepts the subscription). R4's examples are
  stored `off` (../shared/DECISIONS.md) and are not held to the channel rules.
- write rule (`record`): the criteria compile as a strict search of this server (a typo would
  otherwise match everything), and the `subscribers` document is written in the same transaction:
  the identity of the caller who set the subscription up, under which every delivery is checked.
- search filter (`own_only`): a Subscription carries its channel's headers (often a secret of the
  receiver): only who deposited it (`acc.dep`, fhir_server.access.record_keys) finds it, besides
  the platform and admins; so only they change or delete it (a write of a resource its writer
  cannot see is refused, as for any type).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fhir_server.access.record_keys import depositor
from fhir_server.definitions.compartment import patient_compartment_params
from fhir_server.errors import FhirError
from fhir_server.outbound import Policy
from fhir_server.search.request import RESULT_PARAMETERS, IGNORED_PARAMETERS, parse_criterion
from fhir_server.security.callers import Caller
from fhir_server.security.scopes import Scopes, authorize
from fhir_server.storage.documents import Stored
from fhir_server.storage.patient_key import PATIENT_PREFIX
from fhir_server.subscriptions.store import SUBSCRIBERS, caller_document

if TYPE_CHECKING:
    from fhir_server.storage.repository import Repository, Session

CHANNELS = ("rest-hook", "websocket")
PAYLOADS = ("", "application/fhir+json")
# Statuses under which notifications are sent; `error` keeps being retried, and its next success
# makes it `active` again.
DELIVERING = ("active", "error")
# The server's own writes of a Subscription (its status after deliveries): they keep the identity
# of the caller who set it up.
DELIVERY_CALLER = Caller("platform", "subscription-delivery", Scopes.parse("system/Subscription.ru"))


def _invalid(message: str, path: str) -> FhirError:
    return FhirError(422, "business-rule", message, [path])


def criteria_of(resource: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """(type, search parameters) of `Subscription.criteria`; 400 when it is not `Type?search`."""
    criteria = resource.get("criteria")
    if not isinstance(criteria, str) or not criteria.strip():
        raise FhirError(400, "required", "Subscription.criteria is missing", ["Subscription.criteria"])
    resource_type, _, query = criteria.strip().partition("?")
    if not resource_type.isalnum():
        raise FhirError(400, "invalid", "Subscription.criteria must be a search: Type?parameters", ["Subscription.criteria"])
    params = [(n, v) for n, v in parse_qsl(query, keep_blank_values=True) if n not in IGNORED_PARAMETERS]
    shaping = sorted({n.partition(":")[0] for n, _ in params} & RESULT_PARAMETERS)
    if shaping:
        raise FhirError(400, "invalid", f"Subscription.criteria selects resources; it cannot hold {', '.join(shaping)}",
                        ["Subscription.criteria"])
    return resource_type, params


def criteria_patient(resource_type: str, params: list[tuple[str, str]]) -> str:
    """The one patient every match of the criteria belongs to (its `pat`), or "" when they may
    belong to several: then every event of the type is matched against them.

    A match's `pat` is the patient of the first Patient-compartment parameter that holds a Patient
    reference (fhir_server.storage.patient_key), so criteria naming one patient in that parameter,
    or in `patient` where that parameter is `subject` (R4's `patient` is the subject when it is a
    Patient), only match resources of that patient's record.
    """
    compartment = patient_compartment_params().get(resource_type, ())
    if not compartment:
        return ""
    first = compartment[0]
    named = [v for n, v in params if n == first or (n == "patient" and first == "subject")]
    if len(named) != 1 or "," in named[0]:
        return ""
    value = named[0]
    if value.startswith(PATIENT_PREFIX):
        value = value[len(PATIENT_PREFIX):]
    elif first == "subject" and not any(n == "patient" for n, _ in params):
        return ""  # a bare subject id may name a Group as well
    return value if value and "/" not in value else ""


def _channel(resource: dict[str, Any]) -> dict[str, Any]:
    channel = resource.get("channel")
    return channel if isinstance(channel, dict) else {}


def accept(resource_types: set[str], policy: Policy) -> Any:
    def check(caller: Caller, resource: dict[str, Any]) -> None:
        if resource.get("resourceType") != "Subscription" or resource.get("status") == "off":
            return
        resource_type, params = criteria_of(resource)
        if resource_type not in resource_types:
            raise FhirError(400, "not-supported", f"Subscription.criteria names '{resource_type}', which this server "
                            "does not support", ["Subscription.criteria"])
        # Subscribing is searching again and again: the token must allow that search.
        authorize(caller, "search-type", resource_type, criteria=params)
        channel = _channel(resource)
        kind = channel.get("type")
        if kind not in CHANNELS:
            raise _invalid(f"Subscription.channel.type '{kind}' is not supported here (supported: "
                           f"{', '.join(CHANNELS)})", "Subscription.channel.type")
        if channel.get("payload", "") not in PAYLOADS:
            raise _invalid("Subscription.channel.payload may be absent (a notification without content) or "
                           "application/fhir+json", "Subscription.channel.payload")
        if kind == "rest-hook":
            endpoint = channel.get("endpoint")
            refusal = policy.url_refusal(endpoint) if isinstance(endpoint, str) else "it is missing"
            if refusal is not None:
                raise _invalid(f"Subscription.channel.endpoint cannot be notified: {refusal}",
                               "Subscription.channel.endpoint")
        for line in channel.get("header") or []:
            name, _, value = str(line).partition(":")
            if not name.strip() or not value.strip() or any(c in str(line) for c in "\r\n\0"):
                raise _invalid("Each Subscription.channel.header is one 'Name: value' line",
                               "Subscription.channel.header")
        if resource.get("status") == "requested":
            resource["status"] = "active"

    return check


def subscriber(stored: Stored, caller: dict[str, Any]) -> dict[str, Any]:
    resource = stored.resource or {}
    status = resource.get("status")
    resource_type, params = criteria_of(resource)
    channel = _channel(resource)
    return {"_id": stored.id, "rt": resource_type, "pat": criteria_patient(resource_type, params),
            "criteria": resource["criteria"],
            "on": status in DELIVERING and channel.get("type") in CHANNELS, "status": status,
            "channel": {k: channel.get(k) for k in ("type", "endpoint", "payload", "header")}, "caller": caller}


async def record(repository: Repository, session: Session, caller: Caller, stored: Stored) -> None:
    resource_type, params = criteria_of(stored.resource or {})
    if resource_type in repository.resource_types:
        # Compiled as a strict search (400 on an unknown parameter or modifier), not run: criteria
        # naming no patient would ask every shard of a cluster for a match nobody uses.
        await repository.engine.compile(resource_type, [parse_criterion(n, v) for n, v in params],
                                        repository.reader(None, session), base_url="", strict=True)
    subscribers = repository.database.collection(SUBSCRIBERS)
    existing = await subscribers.find_one({"_id": stored.id}, session=session)
    identity = existing["caller"] if existing is not None and caller is DELIVERY_CALLER else caller_document(caller)
    document = subscriber(stored, identity)
    if existing is None:
        await subscribers.insert_one(document, session=session)
    else:
        await subscribers.replace_one({"_id": stored.id}, {**existing, **document}, session=session)


def _sees_all(caller: Caller) -> bool:
    return caller.kind in ("platform", "admin")


def own_only(caller: Caller, resource_type: str | None) -> dict[str, Any] | None:
    if resource_type != "Subscription" or _sees_all(caller):
        return None
    return {"acc.dep": depositor(caller)}
