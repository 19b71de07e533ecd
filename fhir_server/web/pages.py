"""The pages served until issue 19 adds its own: the landing page, its language form, the operator's
guide (`/guide`; `/docs` is the API reference, fhir_server.api.openapi).

The language form is the one form for now: it is what a reader of the landing page can change
(French, the service's language, or English, the documentation's), and what the CSRF tests post.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Match

from fhir_server.config import PROJECT_ROOT
from fhir_server.web.layer import message_page
from fhir_server.web.session import cookie
from fhir_server.web.templates import LANGUAGE_COOKIE, LANGUAGES, render

# The tag of every page route (a router of pages elsewhere, issue 19's, takes it too):
# tests/web/test_layer_reach.py holds every route outside the API to it.
PAGE = "page"
router = APIRouter(tags=[PAGE])
# The choice of language is kept a year.
LANGUAGE_MAX_AGE = 365 * 24 * 3600
CATALOGUE_PATH = "/catalogue"


def documents() -> dict[str, Path]:
    """The operator's documentation as the source tree holds it (none in an installation without it):
    README.md and docs/*.md, by file name; only these names are served."""
    found = {path.name: path for path in sorted((PROJECT_ROOT / "docs").glob("*.md"))}
    readme = PROJECT_ROOT / "README.md"
    return {"README.md": readme, **found} if readme.is_file() else found


@router.get("/")
async def landing(request: Request) -> Response:
    probe = {"type": "http", "method": "GET", "path": CATALOGUE_PATH, "root_path": ""}
    catalogue = any(route.matches(probe)[0] == Match.FULL for route in request.app.routes)
    return render(request.scope, "landing.html", catalogue=catalogue)


@router.post("/language")
async def choose_language(request: Request) -> Response:
    try:
        form = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        form = {}
    chosen = form.get("lang")
    if chosen not in LANGUAGES:
        return message_page(request.scope, 400, "invalid")
    # After a POST, the page is fetched again by GET (303), so a reload does not post twice.
    response = RedirectResponse("/", status_code=303)
    name, value = cookie(LANGUAGE_COOKIE, chosen, secure=request.url.scheme == "https", max_age=LANGUAGE_MAX_AGE)
    response.raw_headers.append((name, value))
    return response


@router.get("/guide")
async def documentation(request: Request) -> Response:
    return render(request.scope, "docs.html", documents=list(documents()))


@router.get("/guide/{name}")
async def document(request: Request, name: str) -> Response:
    path = documents().get(name)
    if path is None:
        return message_page(request.scope, 404, "not_found")
    return PlainTextResponse(path.read_text(encoding="utf-8"))
