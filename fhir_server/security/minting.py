"""Access tokens of the built-in authorization server, for `fhir-server token` and the token endpoint.

Claims use the names the default claim mapping reads (mappings/security/claims.json), so the
server maps its own tokens exactly as it maps Pro Santé Connect's.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fhir_server.security.signing import ServerSigner
from fhir_server.security.tokens import claim_mapping, own_issuer


def mint(signer: ServerSigner, *, kind: str, audience: str, ttl: int, scope: str, subject: str,
         identity: dict[str, str | None]) -> str:
    """A signed access token for `audience` (a FHIR base URL); `identity` keys are Caller fields."""
    mapping = claim_mapping("pro-sante-connect")
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": own_issuer(audience), "sub": subject, "aud": audience.rstrip("/"), "iat": now, "nbf": now,
        "exp": now + ttl, "jti": uuid.uuid4().hex, mapping["kind"]: kind, mapping["scope"]: scope,
    }
    for name, value in identity.items():
        if value is not None:
            claims[mapping[name]] = value
    return signer.sign(claims)
