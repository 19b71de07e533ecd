"""E-mail: messages written from the templates of mappings/notifications/, and the one way they
leave the server, over SMTP (FHIR_SMTP_URL) or, with none configured, into the mail spool of the
data dir, one RFC 5322 file per message, for an operator to read or hand to a mail system.

smtplib runs in a thread: a few messages a minute need no asynchronous SMTP client, and the
standard library speaks SMTP, STARTTLS, TLS and AUTH as well as any.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import smtplib
import ssl
import string
from dataclasses import dataclass
from email.header import Header
from email.message import EmailMessage
from email.quoprimime import body_encode
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from fhir_server.config import PROJECT_ROOT
from fhir_server.timefmt import parse_instant

log = logging.getLogger("fhir_server.mail")
TEMPLATES = PROJECT_ROOT / "mappings" / "notifications"
SPOOL_DIR = "mail-spool"
SCHEMES = {"smtp": "plain", "smtp+starttls": "starttls", "smtps": "tls"}
DEFAULT_PORTS = {"plain": 25, "starttls": 587, "tls": 465}
TIMEOUT_SECONDS = 10.0


class MailUnavailable(Exception):
    """The SMTP server could not take the message now (down, busy, 4xx): try again later."""


class MailRefused(Exception):
    """The SMTP server refused the message for good (5xx: unknown recipient, rejected sender)."""


class MailSettingsInvalid(Exception):
    """FHIR_SMTP_URL or FHIR_MAIL_FROM cannot be used; the message is one line for the operator."""


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    security: str
    user: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        security = SCHEMES.get(parts.scheme)
        if security is None or not parts.hostname:
            raise MailSettingsInvalid(
                "FHIR_SMTP_URL must read smtp://[user:password@]host[:port] (or smtp+starttls://, smtps://)")
        try:
            port = parts.port or DEFAULT_PORTS[security]
        except ValueError:
            raise MailSettingsInvalid("FHIR_SMTP_URL has a port that is not a number") from None
        return cls(parts.hostname, port, security, unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)


@dataclass(frozen=True)
class Template:
    subject: string.Template
    body: string.Template


@cache
def template(name: str) -> Template:
    text = (TEMPLATES / f"{name}.txt").read_text(encoding="utf-8")
    head, _, body = text.partition("\n\n")
    headers = dict(line.split(":", 1) for line in head.splitlines() if ":" in line)
    return Template(string.Template(headers["Subject"].strip()), string.Template(body))


def _one_line(value: str) -> str:
    """Values come from records: no line break may reach a header (or split the body's layout)."""
    return " ".join(value.split())


def compose(name: str, values: dict[str, str], *, key: str, sender: str, recipients: list[str],
            moment_utc: str) -> EmailMessage:
    """The message of template `name`. Its Message-ID is derived from `key` (what it tells, to
    whom), so a message sent twice (delivery is at least once) is recognisable as one."""
    chosen = template(name)
    flat = {k: _one_line(v) for k, v in values.items()}
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = chosen.subject.substitute(flat)
    message["Date"] = format_datetime(parse_instant(moment_utc))
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}@{domain}>"
    # RFC 3834: an automatic message, so auto-responders stay quiet.
    message["Auto-Submitted"] = "auto-generated"
    # Quoted-printable: safe over any SMTP hop, and still readable as text in the spool.
    message.set_content(chosen.body.substitute(flat), cte="quoted-printable")
    return message


def render(name: str, values: dict[str, str], *, key: str, sender: str, recipients: list[str],
           moment_utc: str) -> tuple[str, str]:
    """`compose`'s message as (Message-ID, raw text), written out directly: the same headers and
    quoted-printable body at a fifth of the cost, for messages queued by the hundred thousand (the
    enrolment notice). Addresses that are not ASCII go through `compose`."""
    if not (sender + "".join(recipients)).isascii():
        message = compose(name, values, key=key, sender=sender, recipients=recipients, moment_utc=moment_utc)
        return str(message["Message-ID"]), message.as_string()
    chosen = template(name)
    flat = {k: _one_line(v) for k, v in values.items()}
    subject = Header(chosen.subject.substitute(flat), "utf-8", header_name="Subject").encode(linesep="\r\n")
    body = chosen.body.substitute(flat)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message_id = f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}@{domain}>"
    head = [f"From: {_one_line(sender)}", f"To: {_one_line(', '.join(recipients))}", f"Subject: {subject}",
            f"Date: {format_datetime(parse_instant(moment_utc))}", f"Message-ID: {message_id}",
            "Auto-Submitted: auto-generated", 'Content-Type: text/plain; charset="utf-8"',
            "Content-Transfer-Encoding: quoted-printable", "MIME-Version: 1.0"]
    # quoprimime encodes characters as bytes: the UTF-8 bytes, each read as one character.
    octets = (body if body.endswith("\n") else body + "\n").encode("utf-8").decode("latin-1")
    return message_id, "\r\n".join([*head, "", body_encode(octets, eol="\r\n")])


def check_sender(sender: str) -> None:
    if "@" not in parseaddr(sender)[1]:
        raise MailSettingsInvalid(f"FHIR_MAIL_FROM is not an e-mail address: {sender!r}")


class Transport:
    """Where messages go: the SMTP server of FHIR_SMTP_URL, or the spool directory."""

    def __init__(self, smtp_url: str | None, data_dir: Path) -> None:
        self.smtp = SmtpServer.from_url(smtp_url) if smtp_url else None
        self.spool = data_dir / SPOOL_DIR

    @property
    def destination(self) -> str:
        if self.smtp is None:
            return f"the mail spool {self.spool}"
        return f"SMTP {self.smtp.host}:{self.smtp.port}"

    async def send(self, sender: str, recipients: list[str], raw: str, message_id: str) -> None:
        """Raises MailUnavailable (try later) or MailRefused (never)."""
        if self.smtp is None:
            await asyncio.to_thread(self._spool, raw, message_id)
        else:
            await asyncio.to_thread(_send_smtp, self.smtp, sender, recipients, raw, message_id)

    def _spool(self, raw: str, message_id: str) -> None:
        """One file per message, named by its Message-ID: a message written twice is one file."""
        self.spool.mkdir(parents=True, exist_ok=True)
        name = message_id.strip("<>").split("@", 1)[0]
        final = self.spool / f"{name}.eml"
        partial = self.spool / f".{name}.tmp"
        try:
            with open(partial, "w", encoding="utf-8", newline="") as out:
                out.write(raw)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, final)
        except OSError as exc:
            raise MailUnavailable(f"the mail spool {self.spool} cannot be written: {exc}") from exc


def _send_smtp(server: SmtpServer, sender: str, recipients: list[str], raw: str, message_id: str) -> None:
    try:
        if server.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(server.host, server.port, timeout=TIMEOUT_SECONDS,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT_SECONDS)
        with client:
            if server.security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if server.user:
                client.login(server.user, server.password or "")
            # Every recipient refused raises; some refused is the same verdict for those (a 5xx).
            refused = client.sendmail(parseaddr(sender)[1], recipients, raw.encode("utf-8"))
            if refused:
                # Sent to the others, who must not get it twice: the refused are given up.
                log.warning("mail %s: recipients refused %s", message_id, sorted(refused))
    except smtplib.SMTPRecipientsRefused as exc:
        if all(code >= 500 for code, _ in exc.recipients.values()):
            raise MailRefused(f"recipients refused: {sorted(exc.recipients)}") from exc
        raise MailUnavailable(str(exc)) from exc
    except smtplib.SMTPResponseException as exc:
        if exc.smtp_code >= 500 and not isinstance(exc, smtplib.SMTPAuthenticationError):
            raise MailRefused(f"{exc.smtp_code} {exc.smtp_error!r}") from exc
        raise MailUnavailable(f"{exc.smtp_code} {exc.smtp_error!r}") from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise MailUnavailable(f"{exc.__class__.__name__}: {exc}") from exc
