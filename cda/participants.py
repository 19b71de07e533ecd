"""Header participants (authors, legal authenticator, custodian) as resources contained in the
DocumentReference: they describe the document as sent, not directory entries of this server."""

from lxml import etree

from cda.datatypes import codeable_concept, every, first, human_name, identifier, text


class ContainedResources:
    """The `contained` list of one resource, each participant added once (keyed by identity)."""

    def __init__(self) -> None:
        self.resources: list[dict] = []
        self._by_key: dict[str, str] = {}

    def add(self, prefix: str, key: str | None, resource: dict) -> str:
        """Add `resource` unless one with the same key exists; return its local reference."""
        if key is not None and key in self._by_key:
            return self._by_key[key]
        local_id = f"{prefix}{sum(1 for r in self.resources if r['id'].startswith(prefix)) + 1}"
        self.resources.append({"resourceType": resource["resourceType"], "id": local_id, **resource})
        reference = f"#{local_id}"
        if key is not None:
            self._by_key[key] = reference
        return reference


def _identity_key(resource_type: str, identifiers: list[dict]) -> str | None:
    if not identifiers:
        return None
    return resource_type + "".join(f"|{i['system']}|{i['value']}" for i in identifiers)


def organization(element: etree._Element | None, contained: ContainedResources) -> str | None:
    """representedOrganization / representedCustodianOrganization -> Organization (FINESS)."""
    if element is None:
        return None
    identifiers = [i for i in map(identifier, every(element, "id")) if i]
    resource: dict = {"resourceType": "Organization"}
    if identifiers:
        resource["identifier"] = identifiers
    if name := text(first(element, "name")):
        resource["name"] = name
    if len(resource) == 1:
        return None
    key = _identity_key("Organization", identifiers) or f"Organization|{name}"
    return contained.add("org", key, resource)


def _practitioner(
    entity: etree._Element, person: etree._Element | None, contained: ContainedResources
) -> str | None:
    identifiers = [i for i in map(identifier, every(entity, "id")) if i]
    resource: dict = {"resourceType": "Practitioner"}
    if identifiers:
        resource["identifier"] = identifiers
    if name := human_name(first(person, "name")):
        resource["name"] = [name]
    if len(resource) == 1:
        return None
    return contained.add("practitioner", _identity_key("Practitioner", identifiers), resource)


def assigned_entity(entity: etree._Element | None, contained: ContainedResources) -> str | None:
    """assignedAuthor / assignedEntity -> PractitionerRole (RPPS practitioner, role, organization),
    or a Device when the author is software."""
    if entity is None:
        return None
    device = first(entity, "assignedAuthoringDevice")
    if device is not None:
        return _device(entity, device, contained)
    role: dict = {"resourceType": "PractitionerRole"}
    if practitioner := _practitioner(entity, first(entity, "assignedPerson"), contained):
        role["practitioner"] = {"reference": practitioner}
    if org := organization(first(entity, "representedOrganization"), contained):
        role["organization"] = {"reference": org}
    if specialty := codeable_concept(first(entity, "code")):
        role["code"] = [specialty]
    if len(role) == 1:
        return None
    key = "PractitionerRole|" + "|".join(
        str(role.get(k)) for k in ("practitioner", "organization", "code")
    )
    return contained.add("role", key, role)


def _device(entity: etree._Element, device: etree._Element, contained: ContainedResources) -> str:
    resource: dict = {"resourceType": "Device"}
    if identifiers := [i for i in map(identifier, every(entity, "id")) if i]:
        resource["identifier"] = identifiers
    names = [
        {"name": value, "type": kind}
        for value, kind in (
            (text(first(device, "softwareName")), "model-name"),
            (text(first(device, "manufacturerModelName")), "manufacturer-name"),
        )
        if value
    ]
    if names:
        resource["deviceName"] = names
    if org := organization(first(entity, "representedOrganization"), contained):
        resource["owner"] = {"reference": org}
    return contained.add("device", _identity_key("Device", resource.get("identifier", [])), resource)
