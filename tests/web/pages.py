"""What the browser tests read from a page: its forms' CSRF token, its cookies, its inline code."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx

TOKEN = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]+)">')
# The headers every page answer carries (fhir_server/web/layer.py), as a browser reads them.
PAGE_HEADERS = ("content-security-policy", "x-frame-options", "referrer-policy", "x-content-type-options")


def csrf_token(page: httpx.Response) -> str:
    found = TOKEN.findall(page.text)
    assert found, "the page has no form carrying a CSRF token"
    return found[0]


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """Each cookie the response sets, by name, with its whole Set-Cookie line."""
    return {line.split("=", 1)[0]: line for line in response.headers.get_list("set-cookie")}


def assert_page_headers(response: httpx.Response) -> None:
    policy = response.headers["content-security-policy"]
    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    assert directives["script-src"] == ["'self'"] and directives["default-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"] and directives["form-action"] == ["'self'"]
    assert directives["base-uri"] == ["'none'"] and directives["object-src"] == ["'none'"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy and "*" not in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


class _InlineCode(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style>")
        self.found += [f"{name}= on <{tag}>" for name in names if name == "style" or name.startswith("on")]
        self.found += [f"javascript: URL on <{tag}>" for name, value in attrs
                       if name in ("href", "src", "action") and (value or "").strip().lower().startswith("javascript:")]


def inline_code(html: str) -> list[str]:
    """Whatever the page's CSP would block: inline scripts and styles, event handlers, javascript: URLs."""
    parser = _InlineCode()
    parser.feed(html)
    return parser.found
