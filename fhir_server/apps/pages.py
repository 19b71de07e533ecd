"""The pages of the app catalogue and of connecting an app (SMART App Launch v2, standalone launch).

`GET /catalogue` lists the referenced apps (HTML; JSON with `Accept: application/json` or at
`/catalogue.json`). `GET /auth/authorize` checks the app's request (fhir_server.apps.authorization)
and sends the browser to the sign-in page (the OpenID Connect provider's link, fhir_server.apps.oidc,
and the trial sign-in's form, each when configured), or straight to the consent page when its session is
signed in; the consent page shows the app, its referencing status and each scope in plain French,
with a box to untick, and the record to connect when the person represents others; Agree sends the
browser back to the app with a code, Refuse with `error=access_denied`.

All of them pass through the page layer (fhir_server.web.layer: CSRF on every POST, CSP without
inline script, the session cookie); the consent page lets its form lead to the app's origin
(`form_targets`), as the browser follows the answer's redirect there.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from fhir_server.api.rate_limits import scope_address
from fhir_server.api.responses import base_url
from fhir_server.apps import authorization, oidc, signin
from fhir_server.apps.authorization import PageError, RedirectError, redirect_with
from fhir_server.apps.connections import records_of
from fhir_server.apps.grants import Grants
from fhir_server.apps.oidc import OidcProvider, SignInFailed
from fhir_server.apps.registry import App, find_app, referenced_apps
from fhir_server.apps.wording import phrase
from fhir_server.limits import Exceeded, Limiter
from fhir_server.security.tokens import server_root
from fhir_server.storage.database import Database
from fhir_server.web.layer import message_page
from fhir_server.web.pages import CATALOGUE_PATH, PAGE
from fhir_server.web.session import cookie, new_session_id, session_cookie_name
from fhir_server.web.templates import render

log = logging.getLogger("fhir_server.web")
router = APIRouter(tags=[PAGE])


def _database(request: Request) -> Database:
    return request.app.state.repository.database  # type: ignore[no-any-return]


def _session(request: Request) -> str:
    return str(request.scope["state"]["session"])


async def _form(request: Request) -> list[tuple[str, str]]:
    try:
        return parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return []


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


@router.get(CATALOGUE_PATH)
async def catalogue(request: Request) -> Response:
    apps = await referenced_apps(_database(request).db)
    if _wants_json(request):
        return _catalogue_json(apps)
    return render(request.scope, "catalogue.html", apps=apps)


@router.get(CATALOGUE_PATH + ".json")
async def catalogue_json(request: Request) -> Response:
    return _catalogue_json(await referenced_apps(_database(request).db))


def _catalogue_json(apps: list[App]) -> Response:
    return JSONResponse({"apps": [app.catalogue_entry() for app in apps]}, headers={"Cache-Control": "no-cache"})


def _page_error(request: Request, error: PageError) -> Response:
    return message_page(request.scope, error.status, error.key)


@router.get("/auth/authorize")
async def authorize(request: Request) -> Response:
    database = _database(request)
    try:
        _, values = await authorization.check(database, dict(request.query_params), base_url(request))
    except PageError as error:
        return _page_error(request, error)
    except RedirectError as error:
        return RedirectResponse(error.location, status_code=303)
    request_id = await authorization.remember(database, _session(request), values)
    if await signin.signed_in(database.db, _session(request)) is not None:
        return RedirectResponse(f"/auth/consent?request={request_id}", status_code=303)
    return RedirectResponse(f"/auth/signin?request={request_id}", status_code=303)


def _signin(request: Request, status: int = 200, *, request_id: str, failed: bool = False, ins: str = "") -> Response:
    return render(request.scope, "signin.html", status, request_id=request_id, failed=failed, ins=ins,
                  trial=request.app.state.settings.trial_signin, provider=request.app.state.oidc is not None)


@router.get("/auth/signin")
async def signin_page(request: Request) -> Response:
    if not request.app.state.settings.trial_signin and request.app.state.oidc is None:
        return message_page(request.scope, 503, "no_signin")
    request_id = request.query_params.get("request", "")
    try:
        await authorization.pending(_database(request), request_id, _session(request))
    except PageError as error:
        return _page_error(request, error)
    return _signin(request, request_id=request_id)


def _callback_url(request: Request) -> str:
    return server_root(base_url(request)) + oidc.CALLBACK_PATH


@router.get("/auth/oidc/start")
async def oidc_start(request: Request) -> Response:
    provider: OidcProvider | None = request.app.state.oidc
    if provider is None:
        return message_page(request.scope, 503, "no_signin")
    request_id = request.query_params.get("request", "")
    try:
        await authorization.pending(_database(request), request_id, _session(request))
        location = await provider.start(_database(request), _session(request), request_id, _callback_url(request))
    except PageError as error:
        return _page_error(request, error)
    except SignInFailed as failed:
        log.warning("OpenID Connect sign-in cannot start: %s", failed)
        return message_page(request.scope, 502, "provider_failed")
    return RedirectResponse(location, status_code=303)


@router.get(oidc.CALLBACK_PATH)
async def oidc_callback(request: Request) -> Response:
    provider: OidcProvider | None = request.app.state.oidc
    if provider is None:
        return message_page(request.scope, 503, "no_signin")
    database = _database(request)
    started = await provider.take_state(database, _session(request), request.query_params.get("state", ""))
    if started is None:
        return message_page(request.scope, 400, "request_expired")
    code = request.query_params.get("code")
    if not code:
        # The person cancelled at the provider, or it refused (`error=`): nobody is signed in.
        return message_page(request.scope, 400, "provider_refused")
    try:
        ins = await provider.finish(code, started, _callback_url(request))
    except SignInFailed as failed:
        log.warning("OpenID Connect sign-in refused: %s", failed)
        return message_page(request.scope, 502, "provider_failed")
    return await _signed_in(request, ins, started.request_id)


async def _signed_in(request: Request, ins: str, request_id: str) -> Response:
    """A new session id at sign-in (ASVS 3.2.1): one planted before is worth nothing now."""
    database = _database(request)
    session = new_session_id()
    await signin.sign_in(database, session, ins)
    await authorization.rebind(database, request_id, session)
    response = RedirectResponse(f"/auth/consent?request={request_id}", status_code=303)
    secure = request.url.scheme == "https"
    response.raw_headers.append(cookie(session_cookie_name(secure), session, secure=secure))
    return response


@router.post("/auth/signin")
async def signin_post(request: Request) -> Response:
    if not request.app.state.settings.trial_signin:
        return message_page(request.scope, 503, "no_signin")
    database = _database(request)
    form = dict(await _form(request))
    request_id, ins, code = form.get("request", ""), form.get("ins", "").strip(), form.get("code", "")
    try:
        await authorization.pending(database, request_id, _session(request))
    except PageError as error:
        return _page_error(request, error)
    limiter: Limiter = request.app.state.limiter
    spenders = [f"address {scope_address(request.scope)}", f"ins {ins}"]
    try:
        for spender in spenders:
            limiter.check("signin-failures", spender)
    except Exceeded:
        return message_page(request.scope, 429, "signin_throttled")
    if not signin.well_formed_ins(ins) or not await signin.use_code(database, ins, code):
        for spender in spenders:
            limiter.count("signin-failures", spender)
        return _signin(request, 400, request_id=request_id, failed=True, ins=ins)
    return await _signed_in(request, ins, request_id)


async def _consent_context(request: Request, request_id: str) -> tuple[authorization.Pending, App, str] | Response:
    """The waiting request, its app and the signed-in person's INS; else the page to show instead."""
    database = _database(request)
    try:
        pending = await authorization.pending(database, request_id, _session(request))
    except PageError as error:
        return _page_error(request, error)
    ins = await signin.signed_in(database.db, _session(request))
    if ins is None:
        return RedirectResponse(f"/auth/signin?request={request_id}", status_code=303)
    app = await find_app(database.db, pending.client_id)
    if app is None or not app.may_connect:
        return message_page(request.scope, 403, "app_not_referenced")
    return pending, app, ins


@router.get("/auth/consent")
async def consent_page(request: Request) -> Response:
    request_id = request.query_params.get("request", "")
    context = await _consent_context(request, request_id)
    if isinstance(context, Response):
        return context
    pending, app, ins = context
    records = await records_of(request.app.state.repository, ins)
    if not records:
        return message_page(request.scope, 403, "no_record")
    # The form's answer redirects to the app: the page's CSP lets the form lead there.
    parts = urlsplit(pending.redirect_uri)
    request.scope["state"]["form_targets"] = [f"{parts.scheme}://{parts.netloc}"]
    scopes = [(word, phrase(word)) for word in pending.scope.split()]
    return render(request.scope, "consent.html", app=app, scopes=scopes, records=records, request_id=request_id)


@router.post("/auth/consent")
async def consent_post(request: Request) -> Response:
    form = await _form(request)
    fields = dict(form)
    request_id = fields.get("request", "")
    context = await _consent_context(request, request_id)
    if isinstance(context, Response):
        return context
    pending, app, ins = context
    database = _database(request)
    agreed = fields.get("decision") == "agree"
    chosen = fields.get("record", "")
    if agreed and chosen not in {r.patient_id for r in await records_of(request.app.state.repository, ins)}:
        return message_page(request.scope, 400, "invalid")
    # Answered once: a second post of the same page (a double click, a replay) finds nothing.
    if not await authorization.forget(database, request_id):
        return message_page(request.scope, 400, "request_expired")
    if not agreed:
        location = redirect_with(pending.redirect_uri, {"error": "access_denied", "error_description":
                                                        "the patient refused", "state": pending.state})
        return RedirectResponse(location, status_code=303)
    ticked = {value for name, value in form if name == "scope"}
    scope = " ".join(word for word in pending.scope.split() if word in ticked)
    grants: Grants = request.app.state.grants
    code = await grants.agree(client_id=app.client_id, subject=ins, patient=chosen, scope=scope,
                              redirect_uri=pending.redirect_uri, challenge=pending.challenge)
    await grants.supersede(client_id=app.client_id, patient=chosen, keep=code.split(".", 1)[0])
    return RedirectResponse(redirect_with(pending.redirect_uri, {"code": code, "state": pending.state}),
                            status_code=303)
