"""What keeps the layer covering pages added later (issue 19) without anyone thinking of it: every form
is written by the one macro that carries the CSRF token, and every route is either API (bearer
tokens, CORS) or a page (a router tagged `page`, under the page layer); none sits between."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from fastapi.openapi.utils import get_openapi
from starlette.routing import Mount, WebSocketRoute

from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.web import pages
from fhir_server.web.paths import is_api
from fhir_server.web.templates import HERE

TEMPLATES = HERE / "templates"
FORM_MACRO = "forms.html"


def test_every_form_of_every_template_comes_from_the_csrf_macro() -> None:
    for template in TEMPLATES.rglob("*.html"):
        forms = re.findall(r"<form\b[^>]*>", template.read_text(encoding="utf-8"), flags=re.IGNORECASE)
        if template.name == FORM_MACRO:
            assert forms == ['<form method="post" action="{{ action }}">']
        else:
            assert forms == [], f"{template.name} writes a <form> itself: use forms.post_form, which carries the token"
    macro = (TEMPLATES / FORM_MACRO).read_text(encoding="utf-8")
    assert '<input type="hidden" name="csrf_token" value="{{ csrf_token }}">' in macro


def test_every_route_is_either_api_or_a_page(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path), "mongodb://127.0.0.1:1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate operation ids: this schema is only read for its paths and tags
        schema = get_openapi(title="routes", version="0", routes=app.routes)
    routes = [(path, operation.get("tags") or []) for path, operations in schema["paths"].items()
              for operation in operations.values()]
    routes += [(route.path, []) for route in app.routes if isinstance(route, WebSocketRoute)]
    assert ("/", [pages.PAGE]) in routes and ("/language", [pages.PAGE]) in routes
    for path, tags in routes:
        assert is_api(path) or pages.PAGE in tags, (
            f"{path} is neither under the API prefixes of fhir_server/web/paths.py nor a page (a router tagged "
            "fhir_server.web.pages.PAGE): it would be served without a bearer token")
    assert [route.path for route in app.routes if isinstance(route, Mount)] == ["/static"]
