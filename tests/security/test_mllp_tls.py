"""MLLP over TLS with client certificates, against a throwaway CA made here: a sender with a
certificate of the CA is answered; without one, or without TLS, it gets nothing and stores nothing."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fhir_server.ingest.hl7v2 import er7
from fhir_server.ingest.mllp import mllp_send
from tests.hl7v2.test_intake_store import personalised
from tests.server_process import ServerProcess

REFUSED = (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError)


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[Path, Path]:
    key_file, cert_file = path.with_suffix(".key"), path.with_suffix(".pem")
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_file, key_file


def _certificate(name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey,
                 *, ca: bool = False, ip: str | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    where = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Throwaway test CA")])
    ca_cert = _certificate("Throwaway test CA", ca_key, ca_name, ca_key, ca=True)
    files = {"ca": _write(where / "ca", ca_key, ca_cert)[0]}
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    files["server"], files["server_key"] = _write(where / "server", server_key,
                                                  _certificate("127.0.0.1", server_key, ca_name, ca_key, ip="127.0.0.1"))
    files["client"], files["client_key"] = _write(where / "client", client_key,
                                                  _certificate("CHEXEMPLE sender", client_key, ca_name, ca_key))
    return files


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pki: dict[str, Path]) -> Iterator[ServerProcess]:
    args = ["--mllp-tls-cert", str(pki["server"]), "--mllp-tls-key", str(pki["server_key"]), "--mllp-tls-ca", str(pki["ca"])]
    process = ServerProcess(tmp_path_factory.mktemp("tls") / "data", args=args).start()
    yield process
    process.stop()


def context(pki: dict[str, Path], with_certificate: bool) -> ssl.SSLContext:
    tls = ssl.create_default_context(cafile=str(pki["ca"]))
    if with_certificate:
        tls.load_cert_chain(pki["client"], pki["client_key"])
    return tls


def stored(server: ServerProcess, tag: str) -> int:
    found = server.get(f"{server.base_url}/Patient", params={"identifier": f"urn:oid:1.2.250.1.999.1.1.1|IPP{tag}-0099"})
    return int(found.json()["total"])


def test_a_sender_with_a_certificate_of_the_ca_is_answered(server: ServerProcess, pki: dict[str, Path]) -> None:
    tag = uuid.uuid4().hex[:8]
    ack = asyncio.run(mllp_send("127.0.0.1", server.mllp_port, personalised("adt_a28.hl7", tag), 30, context(pki, True)))
    assert er7.parse(ack).text("MSA-1") == "AA"
    assert stored(server, tag) == 1


@pytest.mark.parametrize("how", ["no client certificate", "no TLS"])
def test_other_senders_get_nothing_and_store_nothing(server: ServerProcess, pki: dict[str, Path], how: str) -> None:
    tag = uuid.uuid4().hex[:8]
    tls = context(pki, False) if how == "no client certificate" else None
    with pytest.raises(REFUSED):
        asyncio.run(mllp_send("127.0.0.1", server.mllp_port, personalised("adt_a28.hl7", tag), 10, tls))
    assert stored(server, tag) == 0
