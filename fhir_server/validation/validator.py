"""Validation of one resource: the base R4 structure, then each profile it is checked against."""

from __future__ import annotations

from typing import Any

from fhir_server.validation.base_structure import check_base_structure
from fhir_server.validation.bindings import check_bindings
from fhir_server.validation.cardinality import check_cardinality
from fhir_server.validation.element_rules import ElementRule
from fhir_server.validation.fixed_pattern import check_fixed_and_pattern
from fhir_server.validation.invariants import check_invariants
from fhir_server.validation.issues import ValidationIssue
from fhir_server.validation.navigation import Navigator, Node
from fhir_server.validation.profile_registry import ProfileRegistry
from fhir_server.validation.slicing import SliceMatcher, check_closed_slicing

# Profiles of extensions and datatypes nest (an extension profile on an element of a profile...);
# the bound keeps a cyclic set of definitions from recursing forever.
_MAX_PROFILE_DEPTH = 8


def validate_resource(resource: dict, profile_url: str | None, registry: ProfileRegistry) -> list[ValidationIssue]:
    """Base R4 check, then `profile_url` (if given) and every known profile of `meta.profile`.

    An unknown profile requested explicitly is an error; an unknown profile merely claimed in
    meta.profile is a warning (the server cannot check it, but the resource may still be fine).
    """
    issues = check_base_structure(resource, registry)
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return issues
    return _without_duplicates([*issues, *validate_profiles(resource, profile_url, registry)])


def validate_profiles(resource: dict, profile_url: str | None, registry: ProfileRegistry) -> list[ValidationIssue]:
    """`validate_resource` without the base R4 check, for a caller that has just made it (the
    write path checks the base structure of every resource first, then profiles of some)."""
    issues: list[ValidationIssue] = []
    requested: list[str] = []
    if profile_url is not None:
        if registry.get_structure_definition(profile_url) is None:
            issues.append(
                ValidationIssue("error", "not-found", [], f"Profile {profile_url} is not known to this server")
            )
        else:
            requested.append(profile_url)
    issues.extend(_check_profiles(Node(resource["resourceType"], resource), requested, registry))
    # Resources inside a Bundle (an ITI-65 transaction) are held to the profiles they claim too.
    if resource["resourceType"] == "Bundle":
        for index, entry in enumerate(resource.get("entry") or []):
            inner = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(inner, dict) and isinstance(inner.get("resourceType"), str):
                issues.extend(_check_profiles(Node(f"Bundle.entry[{index}].resource", inner), [], registry))
    return _without_duplicates(issues)


def _check_profiles(root: Node, requested: list[str], registry: ProfileRegistry) -> list[ValidationIssue]:
    """`requested` profiles, those the resource's code imposes, and those claimed in meta.profile
    (unknown claims are warnings)."""
    resource = root.value
    resource_type = resource["resourceType"]
    issues: list[ValidationIssue] = []
    to_check = [*requested, *(url for url in registry.code_profiles.for_resource(resource) if url not in requested)]
    meta = resource.get("meta")
    claimed = (meta.get("profile") or []) if isinstance(meta, dict) else []
    for index, url in enumerate(claimed):
        if url in to_check:
            continue
        if registry.get_structure_definition(url) is None:
            issues.append(
                ValidationIssue(
                    "warning",
                    "not-found",
                    [f"{root.expression}.meta.profile[{index}]"],
                    f"Profile {url} is not known to this server; the resource was not checked against it",
                )
            )
        else:
            to_check.append(url)
    for url in to_check:
        constrained_type = registry.get_structure_definition(url).get("type")
        if constrained_type != resource_type:
            issues.append(
                ValidationIssue(
                    "error",
                    "structure",
                    [root.expression],
                    f"Profile {url} constrains {constrained_type}, not {resource_type}",
                )
            )
            continue
        issues.extend(validate_against_profile(root, url, registry))
    return issues


def validate_against_profile(
    root: Node, profile_url: str, registry: ProfileRegistry, depth: int = 0
) -> list[ValidationIssue]:
    """Profile checks of one instance (resource, datatype or extension) rooted at `root`."""
    rules = registry.element_rules(profile_url)
    matcher = SliceMatcher(rules, registry.terminology)
    navigator = Navigator(root, matcher)
    issues = [
        *check_cardinality(rules, navigator),
        *check_fixed_and_pattern(rules, navigator),
        *check_closed_slicing(rules, navigator, matcher),
        *check_bindings(rules, navigator, registry.terminology),
        *check_invariants(rules, navigator),
    ]
    if depth < _MAX_PROFILE_DEPTH:
        issues.extend(_check_type_profiles(rules, navigator, registry, depth))
    return issues


def _check_type_profiles(
    rules: dict[str, ElementRule], navigator: Navigator, registry: ProfileRegistry, depth: int
) -> list[ValidationIssue]:
    """Elements whose type names a profile we ship (an extension definition, an Identifier
    profile...) are validated against it in place."""
    issues: list[ValidationIssue] = []
    for rule in rules.values():
        known = [url for url in rule.type_profiles if registry.get_structure_definition(url) is not None]
        if not known:
            continue
        for node in navigator.resolve(rule.id):
            if not isinstance(node.value, dict):
                continue
            applicable = _applicable_profiles(known, node.value, registry)
            for url in applicable:
                issues.extend(validate_against_profile(node, url, registry, depth + 1))
    return issues


def _applicable_profiles(urls: list[str], value: dict, registry: ProfileRegistry) -> list[str]:
    # An extension slice lists one profile; its definition only applies to the extension with that url.
    if "url" in value and all(registry.get_structure_definition(u).get("type") == "Extension" for u in urls):
        return [u for u in urls if u == value["url"]]
    return urls


def _without_duplicates(issues: list[ValidationIssue]) -> list[ValidationIssue]:
    seen: set[tuple[Any, ...]] = set()
    unique: list[ValidationIssue] = []
    for issue in issues:
        key = (issue.severity, issue.code, tuple(issue.expression), issue.diagnostics)
        if key not in seen:
            seen.add(key)
            unique.append(issue)
    return unique
