"""Bearer token verification: the server as an OAuth 2.0 resource server.

A JWT is accepted when its signature verifies against a key of its issuer, the issuer is
trusted (FHIR_TRUSTED_ISSUERS, or the server itself: fhir_server.security.signing), its `aud`
names this server's FHIR base URL and it is within `nbf`..`exp`. Its claims become a Caller
through the issuer's claim mapping (mappings/security/claims.json).

A verified token is kept until it expires (bounded), so a request with a token seen before costs
one dict lookup: signature checks run once per token, not once per request. A token of the
server's own keys is kept only while its key is: once `keys retire` removes the key, the token is
refused at its next use, cached or not.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt

from fhir_server.config import PROJECT_ROOT
from fhir_server.outbound import OutboundClient, OutboundError
from fhir_server.security.callers import KINDS, Caller, Kind
from fhir_server.security.scopes import Scopes
from fhir_server.security.signing import ALGORITHM, KeyRing

if TYPE_CHECKING:
    from fhir_server.apps.registry import AppRegistry

log = logging.getLogger("fhir_server")
# Algorithms a trusted issuer may sign with; "none" and HMAC never (a public key is no secret).
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"]
LEEWAY_SECONDS = 30
CACHE_ENTRIES = 10_000
# An unknown `kid` refetches the issuer's JWKS (a key rotation), at most this often.
JWKS_REFETCH_SECONDS = 60.0
# A token of the server's own issuer whose kid names no key kept (made up, or retired).
RETIRED = "the token's key (kid) is not among the server's signing keys"


class InvalidToken(Exception):
    """The request carries no acceptable token: 401 with `WWW-Authenticate: Bearer error=...`."""

    def __init__(self, description: str, error: str = "invalid_token") -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@cache
def _claims_config() -> dict[str, Any]:
    return json.loads((PROJECT_ROOT / "mappings" / "security" / "claims.json").read_text(encoding="utf-8"))


def claim_mapping(name: str) -> dict[str, str]:
    mappings = _claims_config()["mappings"]
    if name not in mappings:
        raise ValueError(f"no claim mapping {name!r} in mappings/security/claims.json (known: {', '.join(mappings)})")
    return dict(mappings[name])


def default_scopes(kind: str) -> str:
    return str(_claims_config()["defaultScopes"][kind])


def own_issuer(base_url: str) -> str:
    """The built-in authorization server's issuer for a FHIR base URL: `<root>/auth`."""
    return f"{server_root(base_url)}/auth"


def server_root(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base[: -len("/fhir")] if base.endswith("/fhir") else base


@dataclass
class TrustedIssuer:
    issuer: str
    # A JWKS URL (https://...) or a file holding the JWKS.
    jwks: str
    mapping: dict[str, str]
    # The kind of every caller this issuer vouches for (Pro Santé Connect: practitioner), or None:
    # the mapping's `kind` claim, else inferred from the identifiers present.
    kind: Kind | None = None
    # How a JWKS URL is fetched (fhir_server.outbound: its destination policy applies); None: files only.
    outbound: OutboundClient | None = None
    keys: dict[str, jwt.PyJWK] | None = None
    fetched_at: float = 0.0

    async def key(self, kid: str | None) -> jwt.PyJWK:
        if self.keys is None or (kid not in self.keys and time.monotonic() - self.fetched_at > JWKS_REFETCH_SECONDS):
            self.keys = await self._load()
            self.fetched_at = time.monotonic()
        if kid is None and len(self.keys) == 1:
            return next(iter(self.keys.values()))
        if kid not in self.keys:
            # The kid is not echoed: it is the sender's text and would reach a response header.
            raise InvalidToken("the token's key (kid) is not among its issuer's keys")
        return self.keys[kid]

    async def _load(self) -> dict[str, jwt.PyJWK]:
        try:
            if self.jwks.startswith(("https://", "http://")):
                if self.outbound is None:
                    raise OutboundError("no outbound client to fetch it with")
                answer = await self.outbound.request("GET", self.jwks, headers={"Accept": "application/json"})
                if answer.status != 200:
                    raise OutboundError(f"HTTP {answer.status}")
                document = json.loads(answer.body)
            else:
                document = await asyncio.to_thread(lambda: json.loads(Path(self.jwks).read_text(encoding="utf-8")))
            return jwks_keys(document)
        except (OSError, ValueError, OutboundError) as exc:
            log.warning("cannot load the JWKS of issuer %s from %s: %s", self.issuer, self.jwks, exc)
            raise InvalidToken("the token's issuer keys cannot be loaded now") from exc


def jwks_keys(document: Any) -> dict[str, jwt.PyJWK]:
    """The signing keys of a JWKS by kid (a key without kid under its position); ValueError if none."""
    keys: dict[str, jwt.PyJWK] = {}
    for position, entry in enumerate((document or {}).get("keys") or []):
        if entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue
        keys[str(entry.get("kid", position))] = key
    if not keys:
        raise ValueError("the JWKS holds no usable signing key")
    return keys


def fitting_algorithms(jwk: jwt.PyJWK, algorithms: list[str]) -> list[str]:
    """The algorithms of `algorithms` a key of this type signs with: a token naming another one
    (an RSA key used as if it were EC, or as an HMAC secret) is refused before its key is used."""
    family = {"RSA": ("RS", "PS"), "EC": ("ES",)}.get(str(jwk.key_type), ())
    return [a for a in algorithms if a.startswith(family)]


def trusted_issuers(value: str | None, outbound: OutboundClient | None = None) -> list[TrustedIssuer]:
    """FHIR_TRUSTED_ISSUERS: a JSON list (inline or in a file) of objects {issuer, jwks, claims?,
    kind?}, or the short form `ISSUER=JWKS` separated by spaces or commas (Pro Santé Connect claims)."""
    text = (value or "").strip()
    if not text:
        return []
    if not text.startswith("[") and Path(text).is_file():
        text = Path(text).read_text(encoding="utf-8")
    if text.startswith("["):
        entries = json.loads(text)
    else:
        entries = []
        for pair in text.replace(",", " ").split():
            issuer, _, jwks = pair.partition("=")
            if not jwks:
                raise ValueError(f"FHIR_TRUSTED_ISSUERS: {pair!r} is not ISSUER=JWKS")
            entries.append({"issuer": issuer, "jwks": jwks})
    issuers = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("issuer"), str) or not isinstance(entry.get("jwks"), str):
            raise ValueError(f"FHIR_TRUSTED_ISSUERS: {entry!r} is not an object with `issuer` and `jwks`")
        kind = entry.get("kind")
        if kind is not None and kind not in KINDS:
            raise ValueError(f"FHIR_TRUSTED_ISSUERS: kind {kind!r} is not one of {', '.join(KINDS)}")
        issuers.append(TrustedIssuer(entry["issuer"], entry["jwks"], claim_mapping(entry.get("claims", "pro-sante-connect")),
                                     kind, outbound))
    return issuers


def _text(value: Any) -> str | None:
    """A claim as one string: the first of a list; a `code^system` value (SubjectRole) as its code."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or value == "":
        return None
    return str(value).split("^", 1)[0]


def _caller(claims: dict[str, Any], issuer: TrustedIssuer | None, audiences: frozenset[str]) -> Caller:
    mapping = issuer.mapping if issuer is not None else claim_mapping("pro-sante-connect")
    got = {name: _text(claims.get(claim)) for name, claim in mapping.items() if name != "scope"}
    claimed = got.pop("kind", None)
    kind = issuer.kind if issuer is not None and issuer.kind else claimed
    if kind is None:
        kind = "practitioner" if got["idnatps"] else "patient" if got["ins"] else "system" if got["client_id"] else None
    if kind not in KINDS or (kind in ("platform", "admin") and issuer is not None and issuer.kind != kind):
        raise InvalidToken("the token names no caller this server knows (patient, practitioner or system)")
    raw_scope = claims.get(mapping["scope"], "")
    try:
        scopes = Scopes.parse(raw_scope if isinstance(raw_scope, (str, list)) else "")
    except ValueError as exc:
        raise InvalidToken(f"the token's scope is malformed: {exc}") from None
    needed = {"patient": "ins", "practitioner": "idnatps"}.get(kind)
    if needed and not got[needed]:
        raise InvalidToken(f"a {kind} token must carry the {mapping[needed]} claim")
    if kind == "system" and not (got["client_id"] or got["organization"]):
        raise InvalidToken(f"a system token must name its client ({mapping['client_id']}) or organisation "
                           f"({mapping['organization']})")
    caller = Caller(kind=kind, id=str(claims.get("sub", "")), scopes=scopes, issuer=str(claims["iss"]),
                    audiences=audiences, expires_at=float(claims["exp"]), **got)  # type: ignore[arg-type]
    if scopes.patient_scoped and caller.patient_context is None:
        raise InvalidToken("the token has patient/ scopes but no patient context")
    return caller


class TokenVerifier:
    def __init__(self, keys: KeyRing, issuers: list[TrustedIssuer], *, configured_base: str | None,
                 disabled_clients: set[str], apps: AppRegistry | None = None,
                 max_entries: int = CACHE_ENTRIES) -> None:
        self.keys = keys
        self.issuers = {i.issuer: i for i in issuers}
        self.configured_base = configured_base
        # Shared with the client registry, which keeps it current: a disabled client is refused at once.
        self.disabled_clients = disabled_clients
        # Apps no longer referenced and grants revoked lately (fhir_server.apps.registry), kept current.
        self.apps = apps
        self.max_entries = max_entries
        # Token -> its caller and, for the server's own tokens, the kid of the key that signed it.
        self._verified: dict[str, tuple[Caller, str | None]] = {}

    def cached(self, token: str, base_url: str) -> Caller | None:
        """The caller of a token verified before and still valid here, else None (verify it)."""
        entry = self._verified.get(token)
        if entry is None:
            return None
        caller, kid = entry
        if caller.expires_at + LEEWAY_SECONDS <= time.time():
            del self._verified[token]
            raise InvalidToken("the token has expired")
        if kid is not None and kid not in self.keys.by_kid:
            del self._verified[token]
            raise InvalidToken(RETIRED)
        if base_url not in caller.audiences:
            raise InvalidToken(f"the token is not for this server (its audience must be {base_url})")
        self._still_allowed(caller)
        return caller

    async def verify(self, token: str, base_url: str) -> Caller:
        hit = self.cached(token, base_url)
        if hit is not None:
            return hit
        try:
            header = jwt.get_unverified_header(token)
            issuer_name = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            raise InvalidToken("the bearer token is not a JWT") from None
        own = own_issuer(base_url)
        issuer = self.issuers.get(issuer_name) if isinstance(issuer_name, str) else None
        own_kid: str | None = None
        if issuer_name == own and issuer is None:
            own_kid = header.get("kid") if isinstance(header.get("kid"), str) else None
            key: Any = await self.keys.public_key(own_kid) if own_kid is not None else None
            if key is None:
                raise InvalidToken(RETIRED)
            algorithms = [ALGORITHM]
        elif issuer is not None:
            jwk = await issuer.key(header.get("kid"))
            key = jwk.key
            algorithms = fitting_algorithms(jwk, ALGORITHMS)
        else:
            raise InvalidToken("the token's issuer is not trusted by this server")
        try:
            claims = jwt.decode(token, key, algorithms=algorithms, audience=base_url, issuer=issuer_name,
                                leeway=LEEWAY_SECONDS, options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken(f"the token is not for this server (its audience must be {base_url})") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("the token's signature does not verify") from None
        except (jwt.PyJWTError, TypeError, ValueError) as exc:
            # TypeError/ValueError: a key the token's algorithm cannot use, whatever it claims.
            raise InvalidToken(f"the token is not acceptable: {exc}") from None
        aud = claims["aud"]
        caller = _caller(claims, issuer, frozenset([aud] if isinstance(aud, str) else aud))
        if issuer is None:
            caller = replace(caller, own_key=True)
        self._still_allowed(caller)
        self._remember(token, caller, own_kid)
        return caller

    def _still_allowed(self, caller: Caller) -> None:
        if caller.client_id is not None and caller.client_id in self.disabled_clients:
            raise InvalidToken("the token's client is disabled")
        refusal = self.apps.refuses(caller) if self.apps is not None else None
        if refusal is not None:
            raise InvalidToken(refusal)

    def _remember(self, token: str, caller: Caller, kid: str | None) -> None:
        if len(self._verified) >= self.max_entries:
            now = time.time()
            for stale in [t for t, (c, _) in self._verified.items() if c.expires_at <= now]:
                del self._verified[stale]
            # Still full: forget the oldest half; they verify again if they come back.
            for old in list(self._verified)[: len(self._verified) // 2 if len(self._verified) >= self.max_entries else 0]:
                del self._verified[old]
        self._verified[token] = (caller, kid)
