"""The server the validator asks when given a base URL: each call recorded as the report's Exchange."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from conformance.model import Exchange, trim
from fhir_server.security.tokens import server_root

TIMEOUT = 60.0


@dataclass(frozen=True)
class Server:
    base_url: str  # the FHIR base, e.g. https://host/fhir
    token: str | None

    @property
    def root(self) -> str:
        """Where the non-FHIR intake endpoints (/ingest/...) live: the base without its /fhir."""
        return server_root(self.base_url)

    def post(self, url: str, content: bytes, content_type: str,
             params: dict[str, str] | None = None) -> tuple[httpx.Response | None, Exchange]:
        """POST `content`; the response (None when none came) and the exchange that shows it."""
        headers = {"Content-Type": content_type, "Accept": "application/fhir+json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        shown = {k: ("Bearer …" if k == "Authorization" else v) for k, v in headers.items()}
        exchange = Exchange("POST", url, shown, trim(content.decode("utf-8", errors="replace")))
        try:
            response = httpx.post(url, content=content, headers=headers, params=params, timeout=TIMEOUT)
        except httpx.HTTPError as error:
            exchange.error = f"{type(error).__name__}: {error}"
            return None, exchange
        exchange.url = str(response.request.url)
        exchange.status = response.status_code
        exchange.response_headers = dict(response.headers)
        exchange.response_body = trim(response.text)
        return response, exchange
