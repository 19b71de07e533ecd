"""Search tests share one server; each module tags its resources with a code of its own and puts
`_tag` in every query, so it sees only its own data whatever the other modules created."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import pytest

TAG_SYSTEM = "http://example.org/test"
# Malformed parameters are errors only when the client asks for strict handling.
STRICT = {"Prefer": "handling=strict"}
Params = Sequence[tuple[str, str]] | Mapping[str, str]


class Store:
    """Creates tagged resources and searches among them."""

    def __init__(self, fhir: httpx.Client, tag: str) -> None:
        self.fhir = fhir
        self.tag = tag

    @property
    def tag_param(self) -> tuple[str, str]:
        return ("_tag", f"{TAG_SYSTEM}|{self.tag}")

    def tagged(self, resource: dict[str, Any]) -> dict[str, Any]:
        meta = dict(resource.get("meta") or {})
        meta["tag"] = [*meta.get("tag", []), {"system": TAG_SYSTEM, "code": self.tag}]
        return {**resource, "meta": meta}

    def create(self, resource: dict[str, Any]) -> str:
        response = self.fhir.post(f"/{resource['resourceType']}", json=self.tagged(resource))
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def params(self, params: Params) -> list[tuple[str, str]]:
        return [*pairs(params), self.tag_param]

    def get(self, path: str, params: Params = (), headers: dict[str, str] | None = None) -> httpx.Response:
        return self.fhir.get(path, params=self.params(params), headers=headers)

    def bundle(self, path: str, params: Params = (), headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = self.get(path, params, headers)
        assert response.status_code == 200, response.text
        return response.json()

    def ids(self, path: str, params: Params = ()) -> set[str]:
        """Ids of the matches (not the includes) of one search; fails if it spans several pages."""
        bundle = self.bundle(path, [*pairs(params), ("_count", "1000")])
        assert not [link for link in bundle["link"] if link["relation"] == "next"]
        return match_ids(bundle)


def pairs(params: Params) -> list[tuple[str, str]]:
    return list(params.items()) if isinstance(params, Mapping) else list(params)


def match_ids(bundle: dict[str, Any]) -> set[str]:
    return {e["resource"]["id"] for e in entries(bundle, "match")}


def entries(bundle: dict[str, Any], mode: str) -> list[dict[str, Any]]:
    return [e for e in bundle.get("entry", ()) if e.get("search", {}).get("mode") == mode]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((l["url"] for l in bundle.get("link", ()) if l["relation"] == relation), None)


@pytest.fixture(scope="module")
def store(fhir: httpx.Client) -> Store:
    return Store(fhir, uuid.uuid4().hex[:12])
