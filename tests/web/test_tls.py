"""`serve --tls-cert/--tls-key` over real HTTPS with a certificate made by the test, two workers:
HSTS on every answer, Secure `__Host-` session cookies, the proxy's word taken only from a trusted
proxy, and the refusals of a certificate that cannot be used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fhir_server.transport import PLAIN_HTTP
from tests.web.conftest import TlsServer
from tests.web.pages import assert_page_headers, csrf_token, set_cookies


def test_https_serves_pages_and_api_with_hsts(tls_server: TlsServer, https: httpx.Client) -> None:
    page = https.get("/")
    for answer in (page, https.get("/fhir/metadata"), https.get("/fhir/Patient"), https.get("/static/site.css")):
        assert answer.url.scheme == "https"
        assert answer.headers["strict-transport-security"].startswith("max-age="), answer.url
        assert int(answer.headers["strict-transport-security"].split("=")[1].split(";")[0]) >= 31536000
    assert_page_headers(page)
    cookies = set_cookies(page)
    assert "session" not in cookies
    session = cookies["__Host-session"]
    assert "Secure" in session and "HttpOnly" in session and "SameSite=Lax" in session and "Path=/" in session
    assert "Domain" not in session
    # The form round trip works under TLS, with the __Host- cookie.
    chosen = https.post("/language", data={"lang": "en", "csrf_token": csrf_token(page)})
    assert chosen.status_code == 303 and "Secure" in set_cookies(chosen)["lang"]
    assert https.post("/language", data={"lang": "en"}).status_code == 403


def test_the_certificate_is_checked_and_plain_http_is_not_served(tls_server: TlsServer) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{tls_server.root_url}/fhir/metadata")  # the system's CAs do not know the test's
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{tls_server.port}/fhir/metadata", timeout=5)  # no plain HTTP on the port


def test_a_trusted_proxy_says_which_scheme_the_browser_used(https: httpx.Client) -> None:
    # The proxy (loopback, named by --forwarded-allow-ips) took the request over plain HTTP: the
    # cookie cannot be Secure. The session server, which trusts no proxy, ignores the same header
    # (tests/web/test_pages.py).
    cookies = set_cookies(https.get("/", headers={"X-Forwarded-Proto": "http"}))
    assert "session" in cookies and "Secure" not in cookies["session"]


def test_the_start_up_says_https_and_no_plain_http_warning(tls_server: TlsServer) -> None:
    log = tls_server.log_path.read_text()
    assert f"ready: FHIR R4 at https://127.0.0.1:{tls_server.port}/fhir" in log
    assert PLAIN_HTTP not in log


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fhir_server.cli", "serve", "--port", "0",
                           "--data-dir", str(tmp_path / "data"), *args],
                          capture_output=True, text=True, timeout=60)


def test_a_certificate_that_cannot_be_used_stops_the_start(tmp_path: Path, tls_server: TlsServer) -> None:
    alone = _serve(tmp_path, "--tls-cert", str(tls_server.ca))
    assert alone.returncode == 1 and "--tls-cert and --tls-key go together" in alone.stderr
    missing = _serve(tmp_path, "--tls-cert", str(tmp_path / "none.pem"), "--tls-key", str(tmp_path / "none.pem"))
    assert missing.returncode == 1 and "cannot use --tls-cert" in missing.stderr
    assert not (tmp_path / "data").exists(), "refused before the store was made"
