"""Signing key rotation on a running two-worker server: `fhir-server keys rotate` makes a key that
signs from then on, tokens of the old key keep working until they expire (or until the old key
is retired), the JWKS lists every kept key, a token naming an unknown kid is 401, and each key
file is 0600. The same generations in the store (MONGODB_URL) on a real embedded store."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pymongo import AsyncMongoClient

from fhir_server.security.server_keys import (KEYS_COLLECTION, KEYS_DIR, add_generation, generations,
                                              remove_generation)
from fhir_server.security.signing import SIGNING_KEY, ServerSigner, new_key
from fhir_server.storage.embedded import EmbeddedStore
from fhir_server.timefmt import now_instant
from tests.security.tokens import bearer, claims, signer
from tests.server_process import ServerProcess

CLI = [sys.executable, "-m", "fhir_server.cli"]
# Enough requests that each of the two workers answers some of them.
TRIES = 12


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("keys") / "data", workers=2).start()
    yield process
    process.stop()


def keys(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    # A kid is base64url and may begin with "-": positionals go after "--", as the help says.
    options = [a for a in args[1:] if a.startswith("--")]
    positionals = [a for a in args[1:] if not a.startswith("--")]
    return subprocess.run([*CLI, "keys", args[0], "--data-dir", str(server.data_dir), *options,
                           *(["--", *positionals] if positionals else [])],
                          capture_output=True, text=True, timeout=120)


def cli_token(server: ServerProcess, *args: str) -> str:
    made = subprocess.run([*CLI, "token", "--data-dir", str(server.data_dir), "--audience", server.base_url, *args,
                           "platform"], capture_output=True, text=True, timeout=120, check=True)
    return made.stdout.strip()


def statuses(server: ServerProcess, token: str) -> set[int]:
    """What every worker answers a read with this token (several requests, new connections)."""
    return {httpx.get(f"{server.base_url}/Patient", params={"_count": "1"}, headers=bearer(token)).status_code
            for _ in range(TRIES)}


def published(server: ServerProcess) -> list[set[str]]:
    return [{key["kid"] for key in httpx.get(f"{server.root_url}/auth/jwks").json()["keys"]} for _ in range(TRIES)]


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.2)


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def test_rotation_keeps_old_tokens_until_retired(server: ServerProcess) -> None:
    old_token = cli_token(server)
    old_kid = kid_of(old_token)
    expired_old = signer(server).sign(claims(server, exp=int(time.time()) - 3600, nbf=int(time.time()) - 7200))
    assert statuses(server, old_token) == {200}
    assert published(server) == [{old_kid}] * TRIES

    rotated = keys(server, "rotate")
    assert rotated.returncode == 0, rotated.stderr
    new_kid = rotated.stdout.strip()
    assert new_kid and new_kid != old_kid and "PRIVATE" not in rotated.stdout + rotated.stderr
    # Every worker publishes both keys within a second or two, without a restart.
    eventually(lambda: published(server) == [{old_kid, new_kid}] * TRIES)
    new_token = cli_token(server)
    assert kid_of(new_token) == new_kid
    assert statuses(server, new_token) == {200}
    assert statuses(server, old_token) == {200}, "a token of the old key works until it expires"
    assert statuses(server, expired_old) == {401}

    kept = {Path(p).name for p in (server.data_dir / KEYS_DIR).glob("*.pem")}
    assert kept == {f"{SIGNING_KEY}.pem", f"{SIGNING_KEY}.2.pem"}
    for key_file in (server.data_dir / KEYS_DIR).glob("*.pem"):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600, key_file
    assert stat.S_IMODE((server.data_dir / KEYS_DIR).stat().st_mode) == 0o700

    listed = keys(server, "list")
    assert listed.returncode == 0, listed.stderr
    lines = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [(line[0], line[2]) for line in lines] == [(old_kid, "verifying"), (new_kid, "signing")]
    assert lines[0][3].startswith("retirable from ")

    # The signing key cannot be retired; the old one not before its tokens are all dead, unless forced.
    refused = keys(server, "retire", new_kid)
    assert refused.returncode == 1 and "signs now" in refused.stderr
    early = keys(server, "retire", old_kid)
    assert early.returncode == 1 and "--force" in early.stderr
    assert statuses(server, old_token) == {200}
    unknown = keys(server, "retire", "no-such-kid")
    assert unknown.returncode == 1 and "no signing key" in unknown.stderr

    forced = keys(server, "retire", old_kid, "--force")
    assert forced.returncode == 0, forced.stderr
    # Verified before and cached by every worker: refused all the same once the key is gone.
    eventually(lambda: statuses(server, old_token) == {401})
    assert published(server) == [{new_kid}] * TRIES
    assert statuses(server, new_token) == {200}
    assert not (server.data_dir / KEYS_DIR / f"{SIGNING_KEY}.pem").exists()


def test_a_token_naming_an_unknown_key_is_refused(server: ServerProcess) -> None:
    stranger = ec.generate_private_key(ec.SECP384R1())
    made_up = jwt.encode(claims(server), stranger, algorithm="ES384", headers={"kid": "made-up-kid"})
    # The server's own key, under a kid it does not have: the kid decides which key verifies.
    relabelled = jwt.encode(claims(server), signer(server).private_key, algorithm="ES384", headers={"kid": "other"})
    no_kid = jwt.encode(claims(server), signer(server).private_key, algorithm="ES384")
    for token in (made_up, relabelled, no_kid):
        answer = httpx.get(f"{server.base_url}/Patient", headers=bearer(token))
        assert answer.status_code == 401
        assert "not among the server's signing keys" in answer.headers["WWW-Authenticate"]
        assert answer.json()["resourceType"] == "OperationOutcome"


def test_unsigned_and_key_confused_tokens_are_refused(server: ServerProcess) -> None:
    """`alg: none` and HS384 keyed with the server's public key, each naming the server's real kid."""
    own = signer(server)
    body = claims(server)

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    unsigned = f"{part({'alg': 'none', 'typ': 'JWT', 'kid': own.kid})}.{part(body)}."
    public_pem = own.private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{part({'alg': 'HS384', 'typ': 'JWT', 'kid': own.kid})}.{part(body)}"
    mac = base64.urlsafe_b64encode(hmac.new(public_pem, signing_input.encode(), hashlib.sha384).digest()).rstrip(b"=")
    confused = f"{signing_input}.{mac.decode()}"
    for token in (unsigned, confused):
        assert httpx.get(f"{server.base_url}/Patient", headers=bearer(token)).status_code == 401


def test_a_damaged_key_file_leaves_the_known_keys_serving(server: ServerProcess) -> None:
    token = cli_token(server)
    damaged = server.data_dir / KEYS_DIR / f"{SIGNING_KEY}.99.pem"
    damaged.write_text("not a key\n", encoding="ascii")
    damaged.chmod(0o600)
    try:
        time.sleep(1.5)  # a reload round has read it
        stranger = jwt.encode(claims(server), ec.generate_private_key(ec.SECP384R1()), algorithm="ES384",
                              headers={"kid": "unknown"})
        assert statuses(server, stranger) == {401}
        assert statuses(server, token) == {200}
    finally:
        damaged.unlink()
    assert "cannot reload the token signing keys" in server.log_path.read_text(encoding="utf-8")


def test_token_lifetime_is_bounded(server: ServerProcess) -> None:
    """What lets `keys retire` know when the tokens of a key that stopped signing are all dead."""
    made = subprocess.run([*CLI, "token", "--data-dir", str(server.data_dir), "--ttl", str(25 * 3600), "platform"],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 2 and "--ttl" in made.stderr and not made.stdout


def test_generations_in_the_store(tmp_path: Path) -> None:
    """With MONGODB_URL the keys are `server_keys` documents: the same life as the files."""
    store = EmbeddedStore(tmp_path / "store")
    url = store.start()

    async def run() -> None:
        client: AsyncMongoClient[dict] = AsyncMongoClient(url)
        db = client["keys-test"]
        try:
            # The first key as servers made it before keys had generations.
            await db[KEYS_COLLECTION].insert_one({"_id": SIGNING_KEY, "secret": new_key(), "created": now_instant()})
            await add_generation(SIGNING_KEY, new_key, data_dir=None, db=db, first_only=True)
            first = await generations(SIGNING_KEY, data_dir=None, db=db)
            assert [g.name for g in first] == [SIGNING_KEY], "a second start makes no second key"
            assert abs(first[0].created - time.time()) < 60
            await add_generation(SIGNING_KEY, new_key, data_dir=None, db=db)
            await add_generation(SIGNING_KEY, new_key, data_dir=None, db=db)
            kept = await generations(SIGNING_KEY, data_dir=None, db=db)
            assert [g.number for g in kept] == [1, 2, 3]
            assert len({ServerSigner(g.text).kid for g in kept}) == 3
            assert kept[1].created <= kept[2].created
            await remove_generation(SIGNING_KEY, f"{SIGNING_KEY}.2", data_dir=None, db=db)
            assert [g.number for g in await generations(SIGNING_KEY, data_dir=None, db=db)] == [1, 3]
            await add_generation(SIGNING_KEY, new_key, data_dir=None, db=db)
            assert [g.number for g in await generations(SIGNING_KEY, data_dir=None, db=db)] == [1, 3, 4]
        finally:
            await client.close()

    try:
        asyncio.run(run())
    finally:
        store.stop()
