"""`fhir-server token`: a signed token on stdout and nothing else, that the running server accepts
as the caller it names; `token system` without an organisation or client is refused."""

from __future__ import annotations

import subprocess
import sys

import jwt

from tests.security.tokens import bearer
from tests.server_process import ServerProcess

TOKEN = [sys.executable, "-m", "fhir_server.cli", "token"]


def token(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TOKEN, "--data-dir", str(server.data_dir), "--audience", server.base_url, *args],
                          capture_output=True, text=True, timeout=60)


def claims(printed: str) -> dict:
    return jwt.decode(printed.strip(), options={"verify_signature": False})


def test_each_kind_prints_one_token_the_server_accepts(server: ServerProcess) -> None:
    kinds = {
        "patient": ["patient", "--ins", "1800175123456789"],
        "practitioner": ["practitioner", "--rpps", "10001234567", "--profession", "10", "--organization", "750000001",
                         "--purpose", "BTG", "--scope", "user/Patient.rs"],
        "system": ["system", "--organization", "750000001", "--role", "insurer"],
        "admin": ["admin"],
        "platform": ["platform", "--ttl", "120"],
    }
    for kind, args in kinds.items():
        result = token(server, *args)
        assert result.returncode == 0, result.stderr
        printed = result.stdout.strip()
        assert result.stdout == printed + "\n" and "\n" not in printed, "stdout holds the token alone"
        got = claims(printed)
        assert got["caller_kind"] == kind and got["aud"] == server.base_url
        response = server.get(f"{server.base_url}/Patient", params={"_count": 0}, headers=bearer(printed))
        # An admin reads no clinical content by default.
        assert response.status_code == (403 if kind == "admin" else 200), (kind, response.text)
    practitioner = claims(token(server, *kinds["practitioner"]).stdout)
    assert (practitioner["SubjectNameID"], practitioner["SubjectRole"], practitioner["SubjectOrganization"],
            practitioner["purpose_of_use"], practitioner["scope"]) == ("810001234567", "10", "750000001", "BTG",
                                                                       "user/Patient.rs")
    assert claims(token(server, *kinds["platform"]).stdout)["exp"] - claims(token(server, "platform").stdout)["iat"] <= 121
    assert claims(token(server, "patient", "--ins", "1800175123456789").stdout)["scope"] == "patient/*.cruds"


def test_a_12_digit_idnatps_is_kept_and_other_numbers_are_refused(server: ServerProcess) -> None:
    kept = token(server, "practitioner", "--rpps", "810001234567", "--profession", "10")
    assert claims(kept.stdout)["SubjectNameID"] == "810001234567"
    refused = token(server, "practitioner", "--rpps", "1234", "--profession", "10")
    assert refused.returncode == 2 and refused.stdout == "" and "RPPS" in refused.stderr


def test_token_system_without_organisation_or_client_points_at_token_platform(server: ServerProcess) -> None:
    refused = token(server, "system")
    assert refused.returncode == 2 and refused.stdout == ""
    assert "--organization" in refused.stderr and "fhir-server token platform" in refused.stderr


def test_a_malformed_scope_is_refused_before_signing(server: ServerProcess) -> None:
    refused = token(server, "platform", "--scope", "system/Patient.xyz")
    assert refused.returncode == 2 and refused.stdout == "" and "cruds" in refused.stderr


def test_a_token_for_another_audience_is_refused_here(server: ServerProcess) -> None:
    elsewhere = token(server, "platform", "--audience", "https://elsewhere.example/fhir").stdout.strip()
    response = server.get(f"{server.base_url}/Patient", headers=bearer(elsewhere))
    assert response.status_code == 401
