"""The landing page and the page layer, over plain HTTP against the session's server: the headers of
every page, the session cookie, the CSRF check on every form POST, and what stays API."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import version

import httpx
import pytest

from fhir_server.transport import PLAIN_HTTP
from tests.server_process import ServerProcess
from tests.web.pages import PAGE_HEADERS, assert_page_headers, csrf_token, inline_code, set_cookies


@pytest.fixture
def browser(server: ServerProcess) -> Iterator[httpx.Client]:
    """A browser of its own: it keeps the cookies it is given, and sends no bearer token."""
    with httpx.Client(base_url=server.root_url, timeout=30.0) as client:
        yield client


def test_the_landing_page_says_what_the_server_is_with_every_page_header(browser: httpx.Client) -> None:
    page = browser.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "FHIR server" in page.text and version("fhir-server") in page.text and "4.0.1" in page.text
    for link in ('href="/fhir/metadata"', 'href="/.well-known/smart-configuration"', 'href="/docs"',
                 'href="/guide"'):
        assert link in page.text
    # The catalogue is linked once it exists (issue 19), and not before.
    assert ('href="/catalogue"' in page.text) == (browser.get("/catalogue").status_code == 200)
    assert_page_headers(page)
    assert inline_code(page.text) == []
    session = set_cookies(page)["session"]
    assert "HttpOnly" in session and "SameSite=Lax" in session and "Path=/" in session
    assert "Secure" not in session, "over plain HTTP a Secure cookie would never come back"
    # The browser keeps its session: no new cookie on the next page.
    assert "session" not in set_cookies(browser.get("/"))


def test_french_unless_the_reader_asks_otherwise(browser: httpx.Client) -> None:
    assert '<html lang="fr">' in browser.get("/").text
    assert '<html lang="en">' in browser.get("/", headers={"Accept-Language": "en"}).text
    assert '<html lang="fr">' in browser.get("/", headers={"Accept-Language": "de, fr;q=0.5"}).text


def test_the_language_form_with_its_token_is_accepted(browser: httpx.Client) -> None:
    token = csrf_token(browser.get("/"))
    chosen = browser.post("/language", data={"lang": "en", "csrf_token": token})
    assert chosen.status_code == 303 and chosen.headers["location"] == "/"
    language = set_cookies(chosen)["lang"]
    assert language.startswith("lang=en;") and "HttpOnly" in language and "SameSite=Lax" in language
    assert_page_headers(chosen)
    assert '<html lang="en">' in browser.get("/", headers={"Accept-Language": "fr"}).text
    # The same token in the header a same-origin script would send.
    back = browser.post("/language", content="lang=fr", headers={"X-CSRF-Token": token,
                                                                 "Content-Type": "application/x-www-form-urlencoded"})
    assert back.status_code == 303 and '<html lang="fr">' in browser.get("/").text


def test_a_form_post_without_its_token_is_refused(browser: httpx.Client) -> None:
    browser.get("/")
    refused = browser.post("/language", data={"lang": "en"})
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("text/html")
    assert "expired" in refused.text or "expiré" in refused.text
    assert "lang" not in set_cookies(refused)
    assert_page_headers(refused)
    assert browser.post("/language", data={"lang": "en", "csrf_token": ""}).status_code == 403
    assert '<html lang="fr">' in browser.get("/").text


def test_another_sessions_token_is_refused(server: ServerProcess, browser: httpx.Client) -> None:
    with httpx.Client(base_url=server.root_url, timeout=30.0) as other:
        theirs = csrf_token(other.get("/"))
        assert other.post("/language", data={"lang": "en", "csrf_token": theirs}).status_code == 303
    mine = csrf_token(browser.get("/"))
    assert mine != theirs
    assert browser.post("/language", data={"lang": "en", "csrf_token": theirs}).status_code == 403


def test_a_token_without_its_session_cookie_is_refused(server: ServerProcess, browser: httpx.Client) -> None:
    token = csrf_token(browser.get("/"))
    # What another site's form would send: the token it copied, without the browser's cookie
    # (SameSite=Lax keeps it from a cross-site POST).
    bare = httpx.post(f"{server.root_url}/language", data={"lang": "en", "csrf_token": token})
    assert bare.status_code == 403
    forged = httpx.post(f"{server.root_url}/language", data={"lang": "en", "csrf_token": token},
                        cookies={"session": "x" * 43})
    assert forged.status_code == 403


def test_form_refusals_of_the_page_itself(browser: httpx.Client) -> None:
    token = csrf_token(browser.get("/"))
    wrong = browser.post("/language", data={"lang": "xx", "csrf_token": token})
    assert wrong.status_code == 400 and wrong.headers["content-type"].startswith("text/html")
    too_large = browser.post("/language", data={"lang": "en", "csrf_token": token, "padding": "x" * 70_000})
    assert too_large.status_code == 413
    assert_page_headers(too_large)


def test_pages_are_not_behind_a_token_and_the_api_still_is(server: ServerProcess, browser: httpx.Client) -> None:
    assert browser.get("/").status_code == 200
    assert httpx.get(f"{server.base_url}/Patient").status_code == 401
    missing = browser.get("/no-such-page")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert_page_headers(missing)
    assert inline_code(missing.text) == []
    for method in ("GET", "PUT", "DELETE"):
        token = csrf_token(browser.get("/"))
        other = browser.request(method, "/language", headers={"X-CSRF-Token": token})
        assert other.status_code == 405 and other.headers["content-type"].startswith("text/html"), method
    api_missing = server.get(f"{server.base_url}/no-such-type/1")
    assert api_missing.status_code == 404
    assert api_missing.json()["resourceType"] == "OperationOutcome"


def test_api_answers_carry_no_page_headers_and_no_cookie(server: ServerProcess) -> None:
    for response in (httpx.get(f"{server.base_url}/metadata"), server.get(f"{server.base_url}/Patient?_count=1"),
                     httpx.get(f"{server.root_url}/.well-known/smart-configuration"),
                     httpx.post(f"{server.root_url}/auth/token", data={"grant_type": "client_credentials"})):
        assert not any(name in response.headers for name in PAGE_HEADERS), response.url
        assert "set-cookie" not in response.headers, response.url


def test_the_operator_docs_are_served_as_text_by_name_only(browser: httpx.Client) -> None:
    listing = browser.get("/guide")
    assert listing.status_code == 200 and 'href="/guide/README.md"' in listing.text
    assert_page_headers(listing)
    readme = browser.get("/guide/README.md")
    assert readme.status_code == 200 and readme.headers["content-type"].startswith("text/plain")
    assert "fhir-server serve" in readme.text
    for outside in ("/guide/pyproject.toml", "/guide/..%2Fpyproject.toml", "/guide/%2e%2e/pyproject.toml"):
        assert browser.get(outside).status_code == 404, outside


def test_a_client_cannot_make_itself_https_without_a_trusted_proxy(browser: httpx.Client) -> None:
    page = browser.get("/", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"})
    cookies = set_cookies(page)
    assert "__Host-session" not in cookies and "Secure" not in cookies["session"]


def test_the_server_says_at_start_that_plain_http_is_for_loopback_or_a_proxy(server: ServerProcess) -> None:
    if not isinstance(server, ServerProcess):
        pytest.skip("reads the log of a server process this session started")
    log = server.log_path.read_text()
    assert len([line for line in log.splitlines() if PLAIN_HTTP in line]) == 1
