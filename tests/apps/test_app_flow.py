"""Issue 19 without a browser: an app of the catalogue connected by a patient over HTTP, as a browser
would drive the pages (tests/apps/flow.py), and every way the flow must refuse: PKCE missing or
wrong, a redirect URI not registered (an error page, never a redirect), a code used twice (its
tokens revoked), refresh rotation and a reused refresh token (the grant revoked), scopes beyond the
app's registration or the grant, a suspended app (no flow, its tokens dead), the patient's
revocation, and a legal representative connecting an app to a minor's record."""

from __future__ import annotations

import html
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fhir_server.security.token_service import ASSERTION_TYPE
from tests.access.world import World, bundle_ids, new_finess, new_ins, open_world
from tests.apps.oidc_provider import Provider
from tests.apps.flow import (REDIRECT, Browser, apps_cli, exchange, fhir_get, pkce, query, refresh, register,
                             token, write_jwks)
from tests.security.tokens import bearer
from tests.server_process import ServerProcess, dedicated_server


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    started = Provider().start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[ServerProcess]:
    """Both sign-ins on: the trial's form, and the OpenID Connect provider's link."""
    # In the session's mode (FHIR_TEST_INPROCESS), so that `make mutate` sees the revocation's code.
    process = dedicated_server(tmp_path_factory.mktemp("apps") / "data",
                               # These tests fail token requests and sign-ins on purpose, more than the
                               # default budgets of failures allow one address in five minutes.
                               env={"FHIR_TRIAL_SIGNIN": "1", "FHIR_RATE_TOKEN_FAILURES": "1000/300",
                                    "FHIR_RATE_SIGNIN_FAILURES": "1000/300", **provider.environment()}).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    world = open_world(server)
    world.system("H", new_finess())
    world.patient_id, world.ins = world.patient(birth_date="1980-02-03")
    world.deposit("plain", "H")
    world.deposit("hidden", "H", labels=("INVISIBLE_PATIENT",))
    yield world


@pytest.fixture(scope="module")
def app(server: ServerProcess) -> str:
    return register(server, "Suivi Glycémie")


@pytest.fixture(scope="module")
def browser(server: ServerProcess, world: World, app: str) -> Browser:
    """The patient's browser, signed in once (the first flow signs in; the session stays signed in)."""
    return Browser(server)


def connect(server: ServerProcess, browser: Browser, world: World, app: str, scopes: list[str] | None = None,
            record: str | None = None) -> dict:
    verifier, challenge = pkce()
    code = browser.code(app, world.ins, challenge, scopes=scopes, record=record)
    answer = exchange(server, app, code, verifier)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_discovery_advertises_the_standalone_launch(server: ServerProcess) -> None:
    smart = httpx.get(f"{server.base_url}/.well-known/smart-configuration", timeout=30).json()
    assert smart["authorization_endpoint"] == f"{server.root_url}/auth/authorize"
    assert smart["code_challenge_methods_supported"] == ["S256"]
    assert {"launch-standalone", "context-standalone-patient", "permission-v2", "permission-offline",
            "client-public", "client-confidential-asymmetric"} <= set(smart["capabilities"])
    assert {"authorization_code", "refresh_token"} <= set(smart["grant_types_supported"])


def test_the_capability_statement_declares_the_connection_operations(server: ServerProcess, world: World) -> None:
    statement = httpx.get(f"{server.base_url}/metadata", headers=_patient_headers(server, world), timeout=30).json()
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    declared = {o["name"]: o["definition"] for o in patient.get("operation", [])}
    assert declared["connected-apps"].endswith("/OperationDefinition/connected-apps")
    assert declared["disconnect-app"].endswith("/OperationDefinition/disconnect-app")


def test_the_catalogue_lists_referenced_apps_only(server: ServerProcess, app: str) -> None:
    listed = register(server, "Carnet Listé", "--public", "--listed-only")
    gone = register(server, "Application Retirée")
    apps_cli(server, "withdraw", gone)
    listing = {line.split("\t")[0]: line.split("\t") for line in apps_cli(server, "list").splitlines()}
    assert listing[gone][1] == "withdrawn" and listing[listed][4] == "listed-only" and listing[app][3] == "public"
    page = httpx.get(f"{server.root_url}/catalogue", timeout=30)
    assert page.status_code == 200 and "Suivi Glycémie" in page.text and "Application Retirée" not in page.text
    assert "Catalogue des applications référencées" in page.text
    as_json = httpx.get(f"{server.root_url}/catalogue", headers={"Accept": "application/json"}, timeout=30).json()
    assert as_json == httpx.get(f"{server.root_url}/catalogue.json", timeout=30).json()
    entries = {entry["client_id"]: entry for entry in as_json["apps"]}
    assert app in entries and listed in entries and gone not in entries
    assert entries[listed]["exchange"] is False and entries[app]["status"] == "referenced"
    assert "redirect_uris" not in entries[app] and "jwks" not in entries[app]
    # A listed-only app cannot connect.
    refused = Browser(server).authorize(listed)
    assert refused.status_code == 403 and "location" not in refused.headers


def test_consent_untick_and_the_token_reads_only_what_was_granted(server: ServerProcess, world: World, app: str,
                                                                   browser: Browser) -> None:
    page = browser.consent_page(app, world.ins)
    assert "Suivi Glycémie" in page.text and "Référencée" in page.text
    assert "Consulter et rechercher : vos documents de santé" in page.text
    assert "form-action 'self' http://127.0.0.1:9" in page.headers["content-security-policy"]
    granted = ["launch/patient", "offline_access", "patient/DocumentReference.rs"]
    answered = browser.answer(page, scopes=granted)
    assert answered.status_code == 303 and answered.headers["location"].startswith(REDIRECT + "?")
    got = query(answered.headers["location"])
    assert got["state"] == "st-1"
    # The code is bound to its PKCE challenge: this browser's authorize made one we do not know.
    assert exchange(server, app, got["code"], pkce()[0]).json()["error"] == "invalid_grant"

    answer = connect(server, browser, world, app, scopes=granted)
    assert answer["scope"] == " ".join(granted) and answer["patient"] == world.patient_id
    assert answer["refresh_token"] and answer["token_type"] == "bearer"
    documents = fhir_get(server, answer["access_token"], "DocumentReference")
    assert documents.status_code == 200, documents.text
    # The app acts through the patient's own rules: INVISIBLE_PATIENT stays hidden.
    assert bundle_ids(documents.json()) == {world.documents["plain"].id}
    assert fhir_get(server, answer["access_token"], f"DocumentReference/{world.documents['hidden'].id}").status_code == 404
    assert fhir_get(server, answer["access_token"], "Observation").status_code == 403
    # Audited as the app acting for the patient, in the patient's own access history.
    trail = httpx.get(f"{server.base_url}/AuditEvent", params={"patient": world.patient_id, "_count": "50"},
                      headers=_patient_headers(server, world),
                      timeout=30)
    assert trail.status_code == 200, trail.text
    apps_seen = [agent for entry in trail.json().get("entry", []) for agent in entry["resource"]["agent"]
                 if agent.get("who", {}).get("identifier", {}).get("value") == app]
    assert apps_seen, "the app's reads are in the patient's access history"


def _patient_headers(server: ServerProcess, world: World) -> dict[str, str]:
    world.patient_caller("self", world.ins)
    return {"Authorization": f"Bearer {world.tokens['self']}", "Accept": "application/fhir+json"}


def test_pkce_is_required_and_checked(server: ServerProcess, world: World, app: str, browser: Browser) -> None:
    for changes in ({"code_challenge": None}, {"code_challenge_method": "plain"}, {"code_challenge_method": None}):
        refused = browser.authorize(app, **changes)  # type: ignore[arg-type]
        assert refused.status_code == 303
        assert query(refused.headers["location"])["error"] == "invalid_request", changes
        assert query(refused.headers["location"])["state"] == "st-1"
    verifier, challenge = pkce()
    code = browser.code(app, world.ins, challenge)
    missing = token(server, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, client_id=app)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_grant"
    wrong = exchange(server, app, code, pkce()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert "code_verifier" in wrong.json()["error_description"]
    assert exchange(server, app, code, verifier, redirect_uri=REDIRECT + "/other").json()["error"] == "invalid_grant"
    assert exchange(server, app, code, verifier).status_code == 200


def test_a_redirect_uri_not_registered_gets_an_error_page(server: ServerProcess, app: str, browser: Browser) -> None:
    for uri in ("https://attacker.example/callback", REDIRECT + "/", REDIRECT + "?x=1"):
        refused = browser.authorize(app, redirect_uri=uri)
        assert refused.status_code == 400 and "location" not in refused.headers
        assert "Adresse de retour refusée" in refused.text
    unknown = browser.authorize(str(uuid.uuid4()))
    assert unknown.status_code == 400 and "location" not in unknown.headers


def test_a_code_used_twice_revokes_what_it_gave(server: ServerProcess, world: World, app: str,
                                                 browser: Browser) -> None:
    verifier, challenge = pkce()
    code = browser.code(app, world.ins, challenge)
    first = exchange(server, app, code, verifier).json()
    assert fhir_get(server, first["access_token"], "DocumentReference").status_code == 200
    again = exchange(server, app, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert fhir_get(server, first["access_token"], "DocumentReference").status_code == 401
    assert refresh(server, app, first["refresh_token"]).json()["error"] == "invalid_grant"


def test_refresh_tokens_rotate_and_a_reused_one_revokes_the_grant(server: ServerProcess, world: World, app: str,
                                                                   browser: Browser) -> None:
    first = connect(server, browser, world, app)
    second = refresh(server, app, first["refresh_token"])
    assert second.status_code == 200, second.text
    second_body = second.json()
    assert second_body["refresh_token"] != first["refresh_token"] and second_body["patient"] == world.patient_id
    third = refresh(server, app, second_body["refresh_token"]).json()
    assert fhir_get(server, third["access_token"], "DocumentReference").status_code == 200
    # Someone replays the first refresh token: the whole grant goes.
    replay = refresh(server, app, first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert refresh(server, app, third["refresh_token"]).json()["error"] == "invalid_grant"
    for answer in (first, second_body, third):
        assert fhir_get(server, answer["access_token"], "DocumentReference").status_code == 401
    # Another app cannot use this app's refresh token.
    other = connect(server, browser, world, app)
    intruder = register(server, "Intrus")
    assert refresh(server, intruder, other["refresh_token"]).json()["error"] == "invalid_grant"


def revoke(server: ServerProcess, client_id: str, token: str | None) -> httpx.Response:
    form = {"client_id": client_id, **({"token": token} if token is not None else {})}
    return httpx.post(f"{server.root_url}/auth/revoke", data=form, timeout=30)


def test_an_app_revokes_its_tokens(server: ServerProcess, world: World, app: str, browser: Browser) -> None:
    smart = httpx.get(f"{server.base_url}/.well-known/smart-configuration", timeout=30).json()
    assert smart["revocation_endpoint"] == f"{server.root_url}/auth/revoke"
    missing = revoke(server, app, None)
    assert missing.status_code == 400, (missing.status_code, missing.text)
    assert missing.json()["error"] == "invalid_request" and "token" in missing.json()["error_description"]
    assert revoke(server, "no-such-app", "whatever").status_code == 401
    # Another app names this app's tokens: 200 (RFC 7009 2.2 says nothing of others' tokens), and they still work.
    held = connect(server, browser, world, app)
    intruder = register(server, "Révocateur")
    for token in (held["access_token"], held["refresh_token"]):
        assert revoke(server, intruder, token).status_code == 200
    assert fhir_get(server, held["access_token"], "DocumentReference").status_code == 200
    # The app hands back its refresh token: the grant ends, its access token with it.
    answer = revoke(server, app, held["refresh_token"])
    assert (answer.status_code, answer.content) == (200, b"")
    assert fhir_get(server, held["access_token"], "DocumentReference").status_code == 401
    assert refresh(server, app, held["refresh_token"]).json()["error"] == "invalid_grant"
    # Or its access token; a token already revoked, or made up, is answered the same.
    other = connect(server, browser, world, app)
    assert revoke(server, app, other["access_token"]).status_code == 200
    assert refresh(server, app, other["refresh_token"]).json()["error"] == "invalid_grant"
    assert revoke(server, app, other["access_token"]).status_code == 200
    assert revoke(server, app, "made.up").status_code == 200
    # A secret this server never issued, under a live grant's id, ends nothing.
    live = connect(server, browser, world, app)
    grant_id = live["refresh_token"].split(".", 1)[0]
    assert revoke(server, app, f"{grant_id}.not-a-secret-it-issued").status_code == 200
    assert fhir_get(server, live["access_token"], "DocumentReference").status_code == 200
    # A refresh token already rotated out still names its grant: handing it back ends the grant.
    rotated = refresh(server, app, live["refresh_token"]).json()
    assert revoke(server, app, live["refresh_token"]).status_code == 200
    assert fhir_get(server, rotated["access_token"], "DocumentReference").status_code == 401
    assert refresh(server, app, rotated["refresh_token"]).json()["error"] == "invalid_grant"


def test_scopes_beyond_the_registration_or_the_grant_are_refused(server: ServerProcess, world: World, app: str,
                                                                  browser: Browser) -> None:
    for scope in ("patient/DocumentReference.cruds", "patient/*.rs", "user/DocumentReference.rs",
                  "launch/patient patient/Appointment.rs"):
        refused = browser.authorize(app, scope=scope)
        assert refused.status_code == 303 and query(refused.headers["location"])["error"] == "invalid_scope", scope
    answer = connect(server, browser, world, app, scopes=["offline_access", "patient/DocumentReference.rs"])
    wider = refresh(server, app, answer["refresh_token"], scope="offline_access patient/Observation.rs")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    narrower = refresh(server, app, answer["refresh_token"], scope="patient/DocumentReference.rs")
    assert narrower.status_code == 200 and narrower.json()["scope"] == "patient/DocumentReference.rs"


def test_a_refusal_goes_back_as_access_denied(server: ServerProcess, world: World, app: str, browser: Browser) -> None:
    page = browser.consent_page(app, world.ins, state="st-refuse")
    answered = browser.answer(page, decision="refuse")
    assert answered.status_code == 303
    assert query(answered.headers["location"]) | {"error_description": ""} == {
        "error": "access_denied", "state": "st-refuse", "error_description": ""}
    # The request is answered: its page cannot be answered again.
    assert browser.answer(page).status_code == 400


def test_the_patient_lists_and_revokes_a_connection(server: ServerProcess, world: World, app: str,
                                                    browser: Browser) -> None:
    answer = connect(server, browser, world, app, scopes=["offline_access", "patient/DocumentReference.rs"])
    assert fhir_get(server, answer["access_token"], "DocumentReference").status_code == 200
    headers = _patient_headers(server, world)
    listed = httpx.get(f"{server.base_url}/Patient/{world.patient_id}/$connected-apps", headers=headers, timeout=30)
    assert listed.status_code == 200, listed.text
    [consent] = [e["resource"] for e in listed.json()["entry"]
                 if e["resource"]["provision"]["actor"][0]["reference"]["identifier"]["value"] == app]
    assert consent["category"][0]["coding"][0]["code"] == "app-connection" and consent["status"] == "active"
    scopes = [x["valueString"] for x in consent["provision"]["extension"] if x["url"].endswith("granted-scope")]
    assert scopes == ["offline_access", "patient/DocumentReference.rs"]
    assert any(x["url"].endswith("last-used") for x in consent["provision"]["extension"]), "the app used it just now"
    # The app itself may not manage connections.
    assert httpx.get(f"{server.base_url}/Patient/{world.patient_id}/$connected-apps",
                     headers=bearer(answer["access_token"]), timeout=30).status_code == 403
    revoked = httpx.post(f"{server.base_url}/Patient/{world.patient_id}/$disconnect-app",
                         params={"consent": consent["id"]}, headers=headers, timeout=30)
    assert revoked.status_code == 200 and revoked.json()["status"] == "inactive"
    assert fhir_get(server, answer["access_token"], "DocumentReference").status_code == 401
    assert refresh(server, app, answer["refresh_token"]).json()["error"] == "invalid_grant"
    again = httpx.get(f"{server.base_url}/Patient/{world.patient_id}/$connected-apps", headers=headers, timeout=30)
    assert consent["id"] not in {e["resource"]["id"] for e in again.json()["entry"]}
    # Someone else's connection of another record is not theirs to end.
    stranger = {**headers, "Authorization": f"Bearer {world.tokens['self']}"}
    other = httpx.post(f"{server.base_url}/Patient/{world.patient_id}/$disconnect-app",
                       params={"consent": "nope"}, headers=stranger, timeout=30)
    assert other.status_code == 404


def test_a_suspended_app_cannot_start_and_its_tokens_die(server: ServerProcess, world: World,
                                                         browser: Browser) -> None:
    doomed = register(server, "Application Suspendue")
    answer = connect(server, browser, world, doomed)
    assert fhir_get(server, answer["access_token"], "DocumentReference").status_code == 200
    apps_cli(server, "suspend", doomed)
    deadline = time.monotonic() + 10
    while fhir_get(server, answer["access_token"], "DocumentReference").status_code != 401:
        assert time.monotonic() < deadline, "the suspended app's token still works"
        time.sleep(0.2)
    assert refresh(server, doomed, answer["refresh_token"]).json()["error"] == "invalid_client"
    # It may still hand back what it holds (RFC 7009).
    assert revoke(server, doomed, answer["refresh_token"]).status_code == 200
    refused = browser.authorize(doomed)
    assert refused.status_code == 403 and "location" not in refused.headers
    assert "Application non référencée" in refused.text


def test_a_confidential_app_authenticates_with_its_key(server: ServerProcess, world: World, browser: Browser,
                                                       tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    public = {**jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1"}
    client = register(server, "Application Confidentielle", "--jwks", str(write_jwks(tmp_path / "jwks.json", public)))
    token_url = f"{server.root_url}/auth/token"

    def assertion() -> str:
        now = int(time.time())
        return jwt.encode({"iss": client, "sub": client, "aud": token_url, "exp": now + 60, "jti": uuid.uuid4().hex},
                          key, algorithm="ES384", headers={"kid": "k1"})

    verifier, challenge = pkce()
    code = browser.code(client, world.ins, challenge)
    bare = exchange(server, client, code, verifier)
    assert bare.status_code == 401 and bare.json()["error"] == "invalid_client"
    signed = exchange(server, client, code, verifier, client_assertion_type=ASSERTION_TYPE,
                      client_assertion=assertion())
    assert signed.status_code == 200, signed.text
    assert fhir_get(server, signed.json()["access_token"], "DocumentReference").status_code == 200
    # It revokes as it got its tokens: with an assertion whose audience is the token endpoint.
    form = {"token": signed.json()["access_token"], "client_assertion_type": ASSERTION_TYPE}
    assert httpx.post(f"{server.root_url}/auth/revoke", data=form, timeout=30).status_code == 401
    revoked = httpx.post(f"{server.root_url}/auth/revoke", data={**form, "client_assertion": assertion()}, timeout=30)
    assert revoked.status_code == 200, revoked.text
    assert fhir_get(server, signed.json()["access_token"], "DocumentReference").status_code == 401


def test_a_legal_representative_connects_an_app_to_the_minor_s_record(server: ServerProcess, world: World,
                                                                      app: str) -> None:
    parent_id, parent_ins = world.patient(birth_date="1985-01-01")
    minor_id, _ = world.patient(birth_date="2015-06-01")
    world.representative(minor_id, parent_ins, "MTH")
    world.deposit("minor_doc", "H", patient_id=minor_id)
    parent = Browser(server)
    world.ins, saved = parent_ins, world.ins
    try:
        page = parent.consent_page(app, parent_ins)
        assert page.text.count('name="record"') == 2 and "personne que vous représentez" in page.text
        verifier, challenge = pkce()
        code = parent.code(app, parent_ins, challenge, record=minor_id)
    finally:
        world.ins = saved
    answer = exchange(server, app, code, verifier).json()
    assert answer["patient"] == minor_id
    documents = fhir_get(server, answer["access_token"], "DocumentReference")
    assert bundle_ids(documents.json()) == {world.documents["minor_doc"].id}
    # Not a record they do not represent.
    stranger = Browser(server)
    page = stranger.consent_page(app, parent_ins)
    refused = stranger.answer(page, record=world.patient_id)
    assert refused.status_code == 400


def test_the_trial_sign_in_refuses_a_wrong_or_spent_code(server: ServerProcess, world: World, app: str) -> None:
    person = Browser(server)
    started = person.authorize(app)
    location = started.headers["location"]
    assert location.startswith("/auth/signin")
    page = person.http.get(location)
    assert 'id="trial"' in page.text and "Connexion d&#39;essai" in page.text
    assert person.sign_in(location, world.ins, code="WRONGCODE1").status_code == 400
    code = apps_cli(server, "signin-code", "--ins", world.ins)
    assert person.sign_in(location, new_ins(), code=code).status_code == 400, "a code is for its INS only"
    assert person.sign_in(location, world.ins, code=code).status_code == 303
    # Spent.
    assert person.sign_in(location, world.ins, code=code).status_code == 400


def test_a_patient_signs_in_at_the_openid_connect_provider(server: ServerProcess, world: World, app: str,
                                                           provider: Provider) -> None:
    person = Browser(server)
    verifier, challenge = pkce()
    location = person.authorize(app, challenge=challenge).headers["location"]
    page = person.http.get(location)
    start = re.search(r'id="provider" href="([^"]+)"', page.text)
    assert start, page.text
    start_url = html.unescape(start.group(1))
    # The provider refuses (the person cancelled): nobody is signed in.
    provider.next_ins = None
    to_provider = person.http.get(start_url)
    assert to_provider.status_code == 303 and to_provider.headers["location"].startswith(provider.issuer + "/authorize?")
    back = httpx.get(to_provider.headers["location"], timeout=30).headers["location"]
    assert person.http.get(back).status_code == 400
    # An ID token with another nonce, or for another client, signs nobody in.
    provider.next_ins = world.ins
    for tamper in ({"nonce": "replayed"}, {"aud": "another-client"}):
        provider.tamper = tamper
        back = httpx.get(person.http.get(start_url).headers["location"], timeout=30).headers["location"]
        assert person.http.get(back).status_code == 502, tamper
    provider.tamper = {}
    back = httpx.get(person.http.get(start_url).headers["location"], timeout=30).headers["location"]
    # The provider's answer is for the browser that started the sign-in only.
    assert Browser(server).http.get(back).status_code == 400
    back = httpx.get(person.http.get(start_url).headers["location"], timeout=30).headers["location"]
    signed = person.http.get(back)
    assert signed.status_code == 303 and signed.headers["location"].startswith("/auth/consent?")
    consent = person.http.get(signed.headers["location"])
    answered = person.answer(consent)
    answer = exchange(server, app, query(answered.headers["location"])["code"], verifier).json()
    assert answer["patient"] == world.patient_id
    assert fhir_get(server, answer["access_token"], "DocumentReference").status_code == 200
