"""What a test case works with: the target (base URL, tokens, MLLP address), its CapabilityStatement,
an HTTP client that records every exchange for the report, the run's test-only identifiers, and the
list of what the run created (deleted at the end unless --keep).

A case decides its verdict by returning (passed) or raising Failed, NotDeclared or NotRun."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from conformance.model import Exchange, trim

FHIR_JSON = "application/fhir+json"
# Every resource the tool writes carries this tag (code: the run id), so a tester can find and
# remove what a run left with --keep, and nothing the tool writes can be mistaken for real data.
TAG_SYSTEM = "urn:fhir-conformance:test"
# No request body above this unless --large (the issue's 10 MB).
BODY_CAP = 10 * 1024 * 1024
ROLES = ("patient", "professional", "blocked_professional", "medecin_traitant")


class Failed(Exception):
    """The server did not meet the requirement; the message says what was expected and seen."""


class NotDeclared(Exception):
    """The feature is optional and the CapabilityStatement does not declare it."""


class NotRun(Exception):
    """The case needs something the tester did not give (a role token, --mllp, --large)."""


@dataclass
class Options:
    base_url: str
    token: str | None = None
    roles: dict[str, str] = field(default_factory=dict)
    # The Patient whose record the role tokens are about (found with the patient token when absent).
    patient_id: str | None = None
    mllp: tuple[str, int] | None = None
    # The server's CDA intake (FHIR has no standard way to declare one): POST a CDA R2 document there.
    cda_url: str | None = None
    keep: bool = False
    large: bool = False
    timeout: float = 60.0

    def shown(self) -> dict[str, Any]:
        """The options as the report prints them: tokens are never written, only whether given."""
        return {"base_url": self.base_url, "token": "given" if self.token else "none",
                "roles": sorted(self.roles), "patient_id": self.patient_id,
                "mllp": f"{self.mllp[0]}:{self.mllp[1]}" if self.mllp else None, "cda_url": self.cda_url, "keep": self.keep, "large": self.large}


@dataclass
class Created:
    type: str
    id: str
    deleted: bool = False
    note: str = ""

    @property
    def reference(self) -> str:
        return f"{self.type}/{self.id}"


class Session:
    def __init__(self, options: Options, capability: dict[str, Any], run_id: str | None = None) -> None:
        self.options = options
        self.capability = capability
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.http = httpx.Client(base_url=options.base_url.rstrip("/"), timeout=options.timeout)
        self.created: list[Created] = []
        self.exchanges: list[Exchange] = []
        # Set-up several cases share (e.g. the documents of the access-rule cases), made once per run.
        self.shared: dict[str, Any] = {}
        self._counter = 0

    def close(self) -> None:
        self.http.close()

    # -- identifiers under the run's test-only namespace ---------------------------------------

    @property
    def system(self) -> str:
        """The identifier system of this run: test-only, never a real national namespace."""
        return f"{TAG_SYSTEM}:{self.run_id}"

    def unique(self, prefix: str = "v") -> str:
        self._counter += 1
        return f"{prefix}-{self.run_id}-{self._counter}"

    def tag(self) -> dict[str, Any]:
        return {"tag": [{"system": TAG_SYSTEM, "code": self.run_id}]}

    def fresh_id(self) -> str:
        """A client-chosen id no one else uses (FHIR ids: up to 64 of [A-Za-z0-9-.])."""
        return f"fc-{uuid.uuid4().hex}"

    # -- HTTP -----------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, resource: Any = None, content: bytes | None = None,
                headers: dict[str, str] | None = None, params: dict[str, str] | None = None,
                role: str | None = None) -> httpx.Response:
        """A request with the tool's token, or the token of `role` (NotRun when it was not given).
        Every exchange is recorded; a body over 10 MB needs --large."""
        sent = {"Accept": FHIR_JSON}
        if resource is not None:
            content = json.dumps(resource).encode()
            sent["Content-Type"] = FHIR_JSON
        if content is not None and len(content) > BODY_CAP and not self.options.large:
            raise NotRun(f"this request's body is {len(content)} bytes, over 10 MB: run with --large")
        token = self.options.token
        if role is not None:
            token = self.options.roles.get(role)
            if not token:
                raise NotRun(f"needs the {role.replace('_', ' ')} token (--{role.replace('_', '-')}-token or the config file)")
        if token:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        base = str(self.http.base_url).rstrip("/")
        url = path if path.startswith("http") else f"{base}/{path.lstrip('/')}" if path else base
        exchange = Exchange(method, url, _shown_headers(sent), _text(content))
        self.exchanges.append(exchange)
        try:
            response = self.http.request(method, url, content=content, headers=sent, params=params)
        except httpx.HTTPError as error:
            exchange.error = f"{type(error).__name__}: {error}"
            raise
        exchange.url = str(response.request.url)
        exchange.status = response.status_code
        exchange.response_headers = _shown_headers(dict(response.headers))
        exchange.response_body = _text(response.content)
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def create(self, resource: dict[str, Any], role: str | None = None) -> dict[str, Any]:
        """POST the resource (tagged with the run) and remember it for the cleanup; Failed unless 201."""
        resource = {**resource, "meta": {**resource.get("meta", {}), **self.tag()}}
        response = self.request("POST", resource["resourceType"], resource=resource, role=role,
                                headers={"Prefer": "return=representation"})
        expect(response, {201}, f"create {resource['resourceType']}")
        created = self.resource_of(response, resource["resourceType"])
        self.remember(resource["resourceType"], created["id"])
        return created

    def remember(self, resource_type: str, resource_id: str) -> None:
        if not any(c.type == resource_type and c.id == resource_id for c in self.created):
            self.created.append(Created(resource_type, resource_id))

    def resource_of(self, response: httpx.Response, resource_type: str) -> dict[str, Any]:
        """The resource a create or update answered; when the server answered without a body
        (return=minimal is its right), read it at its Location."""
        body = _json(response)
        if body.get("resourceType") == resource_type and body.get("id"):
            return body
        location = response.headers.get("location") or response.headers.get("content-location") or ""
        parts = location.split("/_history")[0].rstrip("/").split("/")
        if len(parts) >= 2 and parts[-2] == resource_type:
            read = self.get(f"{resource_type}/{parts[-1]}")
            expect(read, {200}, f"read the created {resource_type} at its Location")
            return _json(read)
        raise Failed(f"the server answered {response.status_code} without the {resource_type} nor a Location naming it")

    # -- the CapabilityStatement ------------------------------------------------------------------

    def rest(self) -> dict[str, Any]:
        return next((r for r in self.capability.get("rest", []) if r.get("mode") == "server"), {})

    def resource_capability(self, resource_type: str) -> dict[str, Any]:
        return next((r for r in self.rest().get("resource", []) if r.get("type") == resource_type), {})

    def require_interaction(self, resource_type: str, code: str) -> None:
        codes = {i.get("code") for i in self.resource_capability(resource_type).get("interaction", [])}
        if code not in codes:
            raise NotDeclared(f"the CapabilityStatement does not declare {code} on {resource_type}")

    def require_system_interaction(self, code: str) -> None:
        if code not in {i.get("code") for i in self.rest().get("interaction", [])}:
            raise NotDeclared(f"the CapabilityStatement does not declare the system interaction {code}")

    def require_flag(self, resource_type: str, flag: str, allowed: tuple[Any, ...] = (True,)) -> None:
        value = self.resource_capability(resource_type).get(flag)
        if value not in allowed:
            raise NotDeclared(f"the CapabilityStatement does not declare {flag} on {resource_type} (has {value!r})")

    def require_search_param(self, resource_type: str, name: str) -> None:
        names = {p.get("name") for p in self.resource_capability(resource_type).get("searchParam", [])}
        names |= {p.get("name") for p in self.rest().get("searchParam", [])}
        if name not in names:
            raise NotDeclared(f"the CapabilityStatement does not declare the search parameter {name} on {resource_type}")

    def require_include(self, resource_type: str, include: str) -> None:
        declared = self.resource_capability(resource_type).get("searchInclude", [])
        if include not in declared and "*" not in declared:
            raise NotDeclared(f"the CapabilityStatement does not declare _include={include} on {resource_type}")

    def instantiates(self, fragment: str) -> bool:
        return any(fragment in url for url in self.capability.get("instantiates", []))


def expect(response: httpx.Response, statuses: set[int], what: str) -> None:
    """Failed unless the answer is one of `statuses`; a refusal of the tool's credentials says so."""
    if response.status_code in statuses:
        return
    allowed = " or ".join(str(s) for s in sorted(statuses))
    if response.status_code == 401:
        raise Failed(f"{what}: the server answered 401 (authentication required): give --token, or "
                     f"--client-id with --private-key, or a role token; expected {allowed}")
    raise Failed(f"{what}: expected {allowed}, got {response.status_code}{_issue_text(response)}")


def _issue_text(response: httpx.Response) -> str:
    body = _json(response)
    if body.get("resourceType") != "OperationOutcome":
        return ""
    texts = [i.get("diagnostics") or i.get("details", {}).get("text") or i.get("code", "") for i in body.get("issue", [])]
    return f" ({'; '.join(t for t in texts if t)[:300]})" if texts else ""


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def body_json(response: httpx.Response) -> dict[str, Any]:
    return _json(response)


def _text(content: bytes | None) -> str:
    if not content:
        return ""
    return trim(content[:20000].decode("utf-8", errors="replace"))


def _shown_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers as the report prints them: a bearer token never reaches a report file."""
    return {k: ("Bearer …" if k.lower() == "authorization" else v) for k, v in headers.items()}
