"""Pages are Jinja2 templates (files under templates/), autoescaped, in the reader's language.

`render` gives every template what the page layer settled (the CSRF token of the session, the
language) so a page never handles them itself; forms are written with the `post_form` macro of
templates/forms.html, which puts the token in (tests/web/test_templates.py holds every `<form` to
it). The words of the pages are data (messages.json), French first: the service is French, the
operator's documentation English.
"""

from __future__ import annotations

import functools
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import jinja2
from starlette.responses import HTMLResponse
from starlette.types import Scope

from fhir_server import FHIR_VERSION

HERE = Path(__file__).resolve().parent
LANGUAGES = ("fr", "en")
LANGUAGE_COOKIE = "lang"
MESSAGES: dict[str, dict[str, str]] = json.loads((HERE / "messages.json").read_text(encoding="utf-8"))

environment = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                 undefined=jinja2.StrictUndefined)


@functools.cache
def server_version() -> str:
    try:
        return version("fhir-server")
    except PackageNotFoundError:
        return "unknown"


def language(scope: Scope) -> str:
    """The language the reader chose (the `lang` cookie), else the first of theirs we write, else French."""
    chosen = scope.get("state", {}).get("cookies", {}).get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return str(chosen)
    for name, value in scope["headers"]:
        if name == b"accept-language":
            for item in value.decode("latin-1").split(","):
                tag = item.split(";")[0].strip().lower()[:2]
                if tag in LANGUAGES:
                    return tag
    return LANGUAGES[0]


def render(scope: Scope, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    lang = language(scope)
    state = scope.get("state", {})
    page = environment.get_template(template).render(
        lang=lang, t=MESSAGES[lang], csrf_token=state.get("csrf_token", ""), version=server_version(),
        fhir_version=FHIR_VERSION, **context)
    return HTMLResponse(page, status_code=status)
