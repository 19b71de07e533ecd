"""Issue 19 in a real browser (`make test-all`; skipped unless FHIR_BROWSER_TESTS=1): Debian's
chromium, headless, driven by Selenium through the pages a patient sees, with the CSP, cookies and
form redirects the browser itself enforces. Chromium and its driver are installed with apt-get when
missing (as root). The consent page's screenshot is saved under FHIR_TEST_ARTIFACTS (default
test-artifacts/ at the repository's root)."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.access.world import World, bundle_ids, new_finess, open_world
from tests.apps.flow import apps_cli, exchange, fhir_get, pkce, query, refresh, register
from tests.server_process import ServerProcess, free_port

pytestmark = pytest.mark.skipif(os.environ.get("FHIR_BROWSER_TESTS") != "1",
                                reason="browser tests run in make test-all (FHIR_BROWSER_TESTS=1)")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("FHIR_TEST_ARTIFACTS") or ROOT / "test-artifacts")
ALLOWED = "launch/patient offline_access patient/DocumentReference.rs patient/Observation.rs"


def _chromium() -> tuple[str, str]:
    """Debian's chromium and chromium-driver, installed when missing."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        if os.geteuid() != 0:
            pytest.skip("chromium and chromium-driver are missing, and installing them needs root")
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"], check=True,
                       capture_output=True, timeout=1200, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return str(shutil.which("chromium")), str(shutil.which("chromedriver"))


class _Callback(http.server.BaseHTTPRequestHandler):
    """The app's redirect URI: it only says it was reached."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = b"<!doctype html><title>app</title><p>back in the app</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def callback() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Callback)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/callback"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("browser") / "data", env={"FHIR_TRIAL_SIGNIN": "1"}).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> World:
    world = open_world(server)
    world.system("H", new_finess())
    world.patient_id, world.ins = world.patient(birth_date="1979-09-09")
    world.deposit("plain", "H")
    world.patient_caller("self", world.ins)
    return world


@pytest.fixture(scope="module")
def driver() -> Iterator[object]:
    binary, chromedriver = _chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,1200",
                     "--lang=fr-FR"):
        options.add_argument(argument)
    # A French patient's browser: the pages answer in its language.
    options.add_experimental_option("prefs", {"intl.accept_languages": "fr-FR,fr"})
    browser = webdriver.Chrome(service=Service(chromedriver), options=options)
    yield browser
    browser.quit()


def _authorize_url(server: ServerProcess, app: str, redirect: str, challenge: str, state: str) -> str:
    from urllib.parse import urlencode

    return f"{server.root_url}/auth/authorize?" + urlencode({
        "response_type": "code", "client_id": app, "redirect_uri": redirect, "scope": ALLOWED, "state": state,
        "aud": server.base_url, "code_challenge": challenge, "code_challenge_method": "S256"})


def _until(driver: object, condition: object, timeout: float = 20) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(condition)  # type: ignore[arg-type]


def _consent(driver: object, server: ServerProcess, world: World, app: str, redirect: str, challenge: str,
             state: str) -> None:
    """Open the authorize URL and sign in if asked: the consent page is shown."""
    from selenium.webdriver.common.by import By

    driver.get(_authorize_url(server, app, redirect, challenge, state))  # type: ignore[attr-defined]
    _until(driver, lambda d: d.find_elements(By.ID, "agree") or d.find_elements(By.ID, "signin"))
    if driver.find_elements(By.ID, "signin"):  # type: ignore[attr-defined]
        assert "Connexion d'essai" in driver.find_element(By.ID, "trial").text  # type: ignore[attr-defined]
        driver.find_element(By.ID, "ins").send_keys(world.ins)  # type: ignore[attr-defined]
        driver.find_element(By.ID, "code").send_keys(apps_cli(server, "signin-code", "--ins", world.ins))  # type: ignore[attr-defined]
        driver.find_element(By.ID, "signin").click()  # type: ignore[attr-defined]
        _until(driver, lambda d: d.find_elements(By.ID, "agree"))


def _scope_box(driver: object, scope: str) -> object:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'input[name="scope"][value="{scope}"]')  # type: ignore[attr-defined]


def test_a_patient_connects_an_app_in_a_browser(server: ServerProcess, world: World, callback: str,
                                                driver: object) -> None:
    from selenium.webdriver.common.by import By

    app = register(server, "Suivi Tension", redirect=callback, scope=ALLOWED)
    verifier, challenge = pkce()
    _consent(driver, server, world, app, callback, challenge, "s1")
    page = driver.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
    assert "Suivi Tension" in page and "Référencée" in page
    assert "Consulter et rechercher : vos mesures de santé" in page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / "consent-page.png"))  # type: ignore[attr-defined]
    _scope_box(driver, "patient/Observation.rs").click()  # type: ignore[attr-defined]
    driver.find_element(By.ID, "agree").click()  # type: ignore[attr-defined]
    _until(driver, lambda d: d.current_url.startswith(callback))
    back = query(driver.current_url)  # type: ignore[attr-defined]
    assert back["state"] == "s1"
    answer = exchange(server, app, back["code"], verifier, redirect_uri=callback)
    assert answer.status_code == 200, answer.text
    granted = answer.json()
    assert "patient/Observation.rs" not in granted["scope"].split()
    assert bundle_ids(fhir_get(server, granted["access_token"], "DocumentReference").json()) == {
        world.documents["plain"].id}
    assert fhir_get(server, granted["access_token"], "Observation").status_code == 403

    # Refused: back to the app with access_denied (the session is still signed in: no sign-in page).
    _consent(driver, server, world, app, callback, pkce()[1], "s2")
    driver.find_element(By.ID, "refuse").click()  # type: ignore[attr-defined]
    _until(driver, lambda d: d.current_url.startswith(callback))
    assert query(driver.current_url) | {"error_description": ""} == {  # type: ignore[attr-defined]
        "error": "access_denied", "state": "s2", "error_description": ""}

    # The patient revokes the connection: the token dies, its refresh token too.
    headers = {"Authorization": f"Bearer {world.tokens['self']}", "Accept": "application/fhir+json"}
    listed = httpx.get(f"{server.base_url}/Patient/{world.patient_id}/$connected-apps", headers=headers, timeout=30)
    [consent] = [e["resource"]["id"] for e in listed.json()["entry"]]
    ended = httpx.post(f"{server.base_url}/Patient/{world.patient_id}/$disconnect-app", params={"consent": consent},
                       headers=headers, timeout=30)
    assert ended.status_code == 200, ended.text
    assert fhir_get(server, granted["access_token"], "DocumentReference").status_code == 401
    assert refresh(server, app, granted["refresh_token"]).json()["error"] == "invalid_grant"

    # Connected again, then the app is suspended: its tokens die, and the flow cannot start.
    verifier, challenge = pkce()
    _consent(driver, server, world, app, callback, challenge, "s3")
    driver.find_element(By.ID, "agree").click()  # type: ignore[attr-defined]
    _until(driver, lambda d: d.current_url.startswith(callback))
    again = exchange(server, app, query(driver.current_url)["code"], verifier, redirect_uri=callback).json()  # type: ignore[attr-defined]
    assert fhir_get(server, again["access_token"], "DocumentReference").status_code == 200
    apps_cli(server, "suspend", app)
    deadline = time.monotonic() + 10
    while fhir_get(server, again["access_token"], "DocumentReference").status_code != 401:
        assert time.monotonic() < deadline, "the suspended app's token still works"
        time.sleep(0.2)
    driver.get(_authorize_url(server, app, callback, pkce()[1], "s4"))  # type: ignore[attr-defined]
    assert "Application non référencée" in driver.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
    assert not driver.current_url.startswith(callback)  # type: ignore[attr-defined]
