"""How `fhir-server serve` talks HTTP: HTTPS with `--tls-cert/--tls-key`, or plain HTTP for
loopback or behind a proxy that terminates TLS; and which proxy's word it takes about the scheme.

Under TLS every response says Strict-Transport-Security, added by uvicorn itself (no middleware on
the hot path). The TLS context is uvicorn's, with TLS 1.2 as the oldest version (ASVS 9.1.3).

Proxy headers (X-Forwarded-Proto, X-Forwarded-For) are believed only from the addresses given to
`--forwarded-allow-ips`: a request whose trusted proxy says https is https to the server (Secure
cookies, https in Location), and nobody else can make the server believe so.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

# A year, the value the HSTS preload list asks for; subdomains are the operator's to decide (README).
HSTS = ("Strict-Transport-Security", "max-age=31536000")
PLAIN_HTTP = ("serving plain HTTP: use it on loopback only, or behind a proxy that terminates TLS "
              "(README, 'HTTPS'); --tls-cert and --tls-key serve HTTPS")


class TlsSettingsInvalid(RuntimeError):
    """The certificate or key cannot be used; the message is one line for the operator."""


def _tls_context(config: Any, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    context = default()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def check_tls(cert: Path | None, key: Path | None) -> None:
    """Refuse, before any worker starts, a certificate and key that uvicorn could not load."""
    if (cert is None) != (key is None):
        raise TlsSettingsInvalid("--tls-cert and --tls-key go together")
    if cert is None:
        return
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsSettingsInvalid(f"cannot use --tls-cert {cert} with --tls-key {key}: "
                                 f"{getattr(exc, 'strerror', None) or exc}") from None


def uvicorn_options(cert: Path | None, key: Path | None, forwarded_allow_ips: str | None) -> dict[str, Any]:
    """uvicorn.Config options for these `serve` arguments (checked by `check_tls`)."""
    options: dict[str, Any] = {"proxy_headers": forwarded_allow_ips is not None,
                               "forwarded_allow_ips": forwarded_allow_ips or ""}
    if cert is not None:
        options.update(ssl_certfile=str(cert), ssl_keyfile=str(key), ssl_context_factory=_tls_context,
                       headers=[HSTS])
    return options
