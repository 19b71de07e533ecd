"""A small OpenID Connect provider for the tests: discovery, JWKS, an authorization endpoint that
signs in whoever the test named next (no page), and a token endpoint that checks the client secret,
the redirect URI and PKCE before answering an ES256 ID token with the INS claim and the nonce."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from tests.server_process import free_port

CLIENT_ID = "fhir-server-test"
CLIENT_SECRET = "s3cret-" + "x" * 24


@dataclass
class Provider:
    port: int = field(default_factory=free_port)
    key: Any = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    # The INS the next sign-in vouches for; None: the person cancels.
    next_ins: str | None = None
    # What the next ID token gets wrong, if anything: {"nonce": "other"}, {"aud": "someone"}...
    tamper: dict[str, Any] = field(default_factory=dict)
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    _server: http.server.ThreadingHTTPServer | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Provider:
        provider = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path, query = urlsplit(self.path).path, {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                if path == "/.well-known/openid-configuration":
                    self._json({"issuer": provider.issuer, "authorization_endpoint": f"{provider.issuer}/authorize",
                                "token_endpoint": f"{provider.issuer}/token", "jwks_uri": f"{provider.issuer}/jwks"})
                elif path == "/jwks":
                    public = jwt.algorithms.ECAlgorithm.to_jwk(provider.key.public_key(), as_dict=True)
                    self._json({"keys": [{**public, "kid": "op1", "use": "sig", "alg": "ES256"}]})
                elif path == "/authorize":
                    if provider.next_ins is None:
                        target = {"error": "access_denied", "state": query["state"]}
                    else:
                        code = secrets.token_urlsafe(16)
                        provider.codes[code] = {**query, "ins": provider.next_ins}
                        target = {"code": code, "state": query["state"]}
                    self.send_response(302)
                    self.send_header("Location", query["redirect_uri"] + "?" + urlencode(target))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self._json({"error": "not found"}, 404)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                asked = provider.codes.pop(form.get("code", ""), None)
                verifier = form.get("code_verifier", "")
                challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if (asked is None or form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET
                        or form.get("redirect_uri") != asked["redirect_uri"] or challenge != asked["code_challenge"]):
                    self._json({"error": "invalid_grant"}, 400)
                    return
                now = int(time.time())
                claims = {"iss": provider.issuer, "sub": "person-" + asked["ins"], "aud": CLIENT_ID, "iat": now,
                          "exp": now + 300, "nonce": asked["nonce"], "ins": asked["ins"], **provider.tamper}
                token = jwt.encode(claims, provider.key, algorithm="ES256", headers={"kid": "op1"})
                self._json({"access_token": "opaque", "token_type": "Bearer", "id_token": token})

            def _json(self, body: dict[str, Any], status: int = 200) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def environment(self) -> dict[str, str]:
        """The server's settings to sign patients in here."""
        return {"FHIR_OIDC_ISSUER": self.issuer, "FHIR_OIDC_CLIENT_ID": CLIENT_ID,
                "FHIR_OIDC_CLIENT_SECRET": CLIENT_SECRET, "FHIR_OUTBOUND_ALLOW": "127.0.0.1"}
