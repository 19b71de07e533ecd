"""FHIR R4 search (http.html#search, search.html): basics, POST search, paging, _include."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from conformance.cases.rest import R4, patient
from conformance.registry import case
from conformance.session import Failed, Session, body_json, expect


def ids(bundle: dict, resource_type: str = "Patient", mode: str | None = None) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])
            if e.get("resource", {}).get("resourceType") == resource_type
            and (mode is None or e.get("search", {}).get("mode", "match") == mode)]


@case("FHIR-search-01", "Search by identifier answers a searchset Bundle with the match", ["FHIR", "search"], R4,
      "http.html#search",
      "If the search succeeds, the return content is a Bundle with type = searchset containing the results of the "
      "search as a list of resources in a defined order.")
def search_identifier(s: Session) -> None:
    s.require_interaction("Patient", "search-type")
    s.require_search_param("Patient", "identifier")
    created = s.create(patient(s))
    identifier = created["identifier"][0]
    response = s.get("Patient", params={"identifier": f"{identifier['system']}|{identifier['value']}"})
    expect(response, {200}, "GET [base]/Patient?identifier=system|value")
    bundle = body_json(response)
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "searchset":
        raise Failed(f"the search answered a {bundle.get('resourceType')} of type {bundle.get('type')!r}")
    if ids(bundle) != [created["id"]]:
        raise Failed(f"the search by the run's unique identifier found {ids(bundle)}, expected [{created['id']}]")


@case("FHIR-search-02", "POST [type]/_search gives the same results as GET", ["FHIR", "search"], R4,
      "http.html#search",
      "servers that support search SHALL also support a POST based search [...] This has exactly the same semantics "
      "as the equivalent GET command.")
def search_post(s: Session) -> None:
    s.require_interaction("Patient", "search-type")
    s.require_search_param("Patient", "identifier")
    created = s.create(patient(s))
    identifier = created["identifier"][0]
    response = s.request("POST", "Patient/_search",
                         content=f"identifier={identifier['system']}|{identifier['value']}".encode(),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    expect(response, {200}, "POST [base]/Patient/_search (form-encoded)")
    if ids(body_json(response)) != [created["id"]]:
        raise Failed(f"POST _search found {ids(body_json(response))}, expected [{created['id']}]")


@case("FHIR-search-03", "Paging: _count is respected and next links reach every match", ["FHIR", "search", "paging"],
      R4, "http.html#paging",
      "If servers provide paging for the results of a search or history interaction, they SHALL conform to this "
      "method [...] for sending continuation links to the client when returning a Bundle. [_count:] The server is "
      "not bound to return the number requested, but cannot return more")
def paging(s: Session) -> None:
    s.require_interaction("Patient", "search-type")
    s.require_search_param("Patient", "family")
    family = s.unique("family")
    expected = {s.create(patient(s, family=family))["id"] for _ in range(3)}
    response = s.get("Patient", params={"family": family, "_count": "2"})
    expect(response, {200}, "GET [base]/Patient?family=...&_count=2")
    seen: list[str] = []
    pages = 0
    while True:
        bundle = body_json(response)
        page = ids(bundle, mode="match")
        if len(page) > 2:
            raise Failed(f"a page holds {len(page)} matches with _count=2")
        seen.extend(page)
        pages += 1
        following = next((l.get("url") for l in bundle.get("link", []) if l.get("relation") == "next"), None)
        if not following or pages > 5:
            break
        response = s.get(following)
        expect(response, {200}, "GET of the next link")
    if set(seen) != expected or len(seen) != len(expected):
        raise Failed(f"following the next links gave {sorted(seen)}, expected the 3 Patients {sorted(expected)}")


@case("FHIR-search-04", "The self link of a searchset names the search", ["FHIR", "search"], R4, "http.html#paging",
      "This Search. url starts with base search, and adds the effective parameters, and additional parameters for "
      "search state. All searches SHALL return this value.")
def self_link(s: Session) -> None:
    s.require_interaction("Patient", "search-type")
    s.require_search_param("Patient", "family")
    family = s.unique("family")
    response = s.get("Patient", params={"family": family})
    expect(response, {200}, "GET [base]/Patient?family=...")
    link = next((l.get("url") for l in body_json(response).get("link", []) if l.get("relation") == "self"), None)
    if not link:
        raise Failed("the searchset Bundle has no link with relation self")
    parameters = dict(parse_qsl(urlsplit(link).query))
    if parameters.get("family") != family or "/Patient" not in urlsplit(link).path:
        raise Failed(f"the self link {link} does not carry the effective parameter family={family}")


@case("FHIR-search-05", "_include returns the referenced resource with search mode include",
      ["FHIR", "search", "include", "optional"], R4, "search.html#include",
      "[_include] Resources returned in the response that are included because of _include are marked with "
      "Bundle.entry.search.mode = include")
def include(s: Session) -> None:
    s.require_interaction("Patient", "search-type")
    s.require_include("Patient", "Patient:general-practitioner")
    s.require_interaction("Practitioner", "create")
    practitioner = s.create({"resourceType": "Practitioner", "name": [{"family": "Conformance"}],
                             "identifier": [{"system": s.system, "value": s.unique("practitioner")}]})
    created = s.create(patient(s, generalPractitioner=[{"reference": f"Practitioner/{practitioner['id']}"}]))
    identifier = created["identifier"][0]
    response = s.get("Patient", params={"identifier": f"{identifier['system']}|{identifier['value']}",
                                        "_include": "Patient:general-practitioner"})
    expect(response, {200}, "search with _include=Patient:general-practitioner")
    bundle = body_json(response)
    if ids(bundle, "Patient", "match") != [created["id"]]:
        raise Failed("the search did not return the Patient as a match")
    if ids(bundle, "Practitioner", "include") != [practitioner["id"]]:
        raise Failed(f"the referenced Practitioner is not included with search.mode include "
                     f"(included: {ids(bundle, 'Practitioner')})")
