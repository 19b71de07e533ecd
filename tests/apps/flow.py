"""A patient connecting an app, driven over HTTP as a browser would (no browser): the authorize
request, the sign-in and consent forms with the CSRF token of their page, the redirect back."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from tests.server_process import ServerProcess

APPS = [sys.executable, "-m", "fhir_server.cli", "apps"]
REDIRECT = "http://127.0.0.1:9/callback"
ALLOWED = ("launch/patient openid fhirUser offline_access patient/DocumentReference.rs patient/Observation.rs "
           "patient/Patient.r")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def apps_cli(server: ServerProcess, *args: str) -> str:
    done = subprocess.run([*APPS, args[0], "--data-dir", str(server.data_dir), *args[1:]], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def register(server: ServerProcess, name: str, *more: str, redirect: str = REDIRECT, scope: str = ALLOWED) -> str:
    return apps_cli(server, "add", "--name", name, "--publisher", "Editeur Exemple", "--category", "Suivi",
                    "--description", "Une application d'essai", "--redirect-uri", redirect, "--scope", scope,
                    *(more or ("--public",)))


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def csrf(page: httpx.Response) -> str:
    found = _CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class Browser:
    """One browser: its cookies (the session) across the pages."""

    server: ServerProcess
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.server.root_url, timeout=60.0, follow_redirects=False)

    def authorize(self, client_id: str, *, scope: str = ALLOWED, challenge: str | None = None,
                  redirect_uri: str = REDIRECT, state: str = "st-1", **changes: str | None) -> httpx.Response:
        params: dict[str, str | None] = {
            "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": scope,
            "state": state, "aud": self.server.base_url, "code_challenge": challenge or pkce()[1],
            "code_challenge_method": "S256", **changes}
        return self.http.get("/auth/authorize?" + urlencode({k: v for k, v in params.items() if v is not None}))

    def sign_in(self, signin_location: str, ins: str, code: str | None = None) -> httpx.Response:
        page = self.http.get(signin_location)
        assert page.status_code == 200, page.text
        request_id = query(signin_location)["request"]
        code = code or apps_cli(self.server, "signin-code", "--ins", ins)
        return self.http.post("/auth/signin", data={"csrf_token": csrf(page), "request": request_id, "ins": ins,
                                                    "code": code})

    def consent_page(self, client_id: str, ins: str, **authorize: str) -> httpx.Response:
        """Authorize, signing in when the session is not yet: the consent page."""
        started = self.authorize(client_id, **authorize)
        assert started.status_code == 303, started.text
        location = started.headers["location"]
        if location.startswith("/auth/signin"):
            signed = self.sign_in(location, ins)
            assert signed.status_code == 303, signed.text
            location = signed.headers["location"]
        page = self.http.get(location)
        assert page.status_code == 200, page.text
        return page

    def answer(self, page: httpx.Response, decision: str = "agree", scopes: list[str] | None = None,
               record: str | None = None) -> httpx.Response:
        request_id = re.search(r'name="request" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        offered = re.findall(r'name="scope" id="[^"]+" value="([^"]+)"', page.text)
        records = re.findall(r'name="record"[^>]*value="([^"]+)"', page.text)
        form = [("csrf_token", csrf(page)), ("request", request_id), ("decision", decision),
                ("record", record or records[0]), *(("scope", s) for s in (offered if scopes is None else scopes))]
        return self.http.post("/auth/consent", content=urlencode(form),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})

    def code(self, client_id: str, ins: str, challenge: str, scopes: list[str] | None = None,
             record: str | None = None, **authorize: str) -> str:
        page = self.consent_page(client_id, ins, challenge=challenge, **authorize)
        answered = self.answer(page, scopes=scopes, record=record)
        assert answered.status_code == 303, answered.text
        got = query(answered.headers["location"])
        assert got["state"] == authorize.get("state", "st-1")
        return got["code"]


def token(server: ServerProcess, **form: str) -> httpx.Response:
    return httpx.post(f"{server.root_url}/auth/token", data=form, timeout=30)


def exchange(server: ServerProcess, client_id: str, code: str, verifier: str, redirect_uri: str = REDIRECT,
             **more: str) -> httpx.Response:
    return token(server, grant_type="authorization_code", code=code, redirect_uri=redirect_uri, client_id=client_id,
                 code_verifier=verifier, **more)


def refresh(server: ServerProcess, client_id: str, refresh_token: str, **more: str) -> httpx.Response:
    return token(server, grant_type="refresh_token", refresh_token=refresh_token, client_id=client_id, **more)


def fhir_get(server: ServerProcess, access_token: str, path: str) -> httpx.Response:
    return httpx.get(f"{server.base_url}/{path}", headers={"Authorization": f"Bearer {access_token}",
                                                           "Accept": "application/fhir+json"}, timeout=30)


def write_jwks(path: Path, public: dict) -> Path:
    path.write_text(json.dumps({"keys": [public]}), encoding="utf-8")
    return path
