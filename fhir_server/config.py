"""Server settings: command line first, then environment, then defaults."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingInvalid(ValueError):
    """A setting cannot be used; the message, one line for the operator, names it and says why."""


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("./data")
    # Unset means: start the embedded MongoDB-wire-compatible store under data_dir.
    mongodb_url: str | None = field(default_factory=lambda: os.environ.get("MONGODB_URL") or None)
    database: str = field(default_factory=lambda: os.environ.get("FHIR_DATABASE", "fhir"))
    mllp_port: int | None = None
    # The database of the same MongoDB the audit trail goes to (FHIR_AUDIT_DATABASE); unset: `database` + "_audit".
    audit_database: str | None = field(default_factory=lambda: os.environ.get("FHIR_AUDIT_DATABASE") or None)
    # Group commit of the audit trail: how long the first waiting event waits for others
    # (FHIR_AUDIT_GROUP_MS), and how many events end the wait at once (FHIR_AUDIT_GROUP_MAX).
    audit_group_ms: float = field(default_factory=lambda: float(os.environ.get("FHIR_AUDIT_GROUP_MS") or 1))
    audit_group_max: int = field(default_factory=lambda: _env_int("FHIR_AUDIT_GROUP_MAX", 64))
    # Bench-only (benchmarks/audit_cost.py's control run): FHIR_BENCH_WITHOUT_AUDIT=1 serves without
    # the audit trail, which the law forbids in any real use.
    bench_without_audit: bool = field(
        default_factory=lambda: os.environ.get("FHIR_BENCH_WITHOUT_AUDIT", "") == "1")
    max_body_bytes: int = field(default_factory=lambda: _env_int("FHIR_MAX_BODY_BYTES", 64 * 1024 * 1024))
    # `_count` when a search or history asks none, and the most any page holds (FHIR_MAX_COUNT).
    default_count: int = field(default_factory=lambda: _env_int("FHIR_DEFAULT_COUNT", 20))
    max_count: int = field(default_factory=lambda: _env_int("FHIR_MAX_COUNT", 1000))
    # Binary payloads above this size go to GridFS instead of the resource document (16 MB BSON limit).
    gridfs_threshold: int = field(default_factory=lambda: _env_int("FHIR_GRIDFS_THRESHOLD", 4 * 1024 * 1024))
    profiles_dir: Path = PROJECT_ROOT / "profiles"
    # Public base URL used in Location headers and fullUrls; derived from the request when unset.
    base_url: str | None = field(default_factory=lambda: os.environ.get("FHIR_BASE_URL") or None)
    # Test and diagnostic only (fhir_server.storage.command_log): append every command the server
    # sends to the store, with the request that sent it, to this file (FHIR_COMMAND_LOG); unset: off.
    command_log: Path | None = field(
        default_factory=lambda: Path(os.environ["FHIR_COMMAND_LOG"]) if os.environ.get("FHIR_COMMAND_LOG") else None)
    # The origins browser apps may call the API from (FHIR_CORS_ORIGINS, comma-separated
    # scheme://host[:port]; fhir_server.web.cors). Unset: none.
    cors_origins: str | None = field(default_factory=lambda: os.environ.get("FHIR_CORS_ORIGINS") or None)
    # Modules whose `register(hooks)` adds hooks at start-up (fhir_server.storage.hooks), comma-separated.
    hooks: str | None = field(default_factory=lambda: os.environ.get("FHIR_HOOKS") or None)

    # Subscriptions (fhir_server.subscriptions.delivery): the first retry of a failed notification
    # waits this long, each next one twice as long (at most 5 minutes); after this many failures in
    # a row the Subscription's status is `error`; an endpoint has this long to answer.
    subscription_retry_ms: int = field(default_factory=lambda: _env_int("FHIR_SUBSCRIPTION_RETRY_MS", 1000))
    subscription_error_after: int = field(default_factory=lambda: _env_int("FHIR_SUBSCRIPTION_ERROR_AFTER", 5))
    subscription_timeout_ms: int = field(default_factory=lambda: _env_int("FHIR_SUBSCRIPTION_TIMEOUT_MS", 10000))

    # Calls the server makes (fhir_server.outbound): destinations allowed besides global addresses
    # over https (comma-separated CIDRs and host names), the longest a call may take, the most bytes
    # of an answer read.
    outbound_allow: str = field(default_factory=lambda: os.environ.get("FHIR_OUTBOUND_ALLOW", ""))
    outbound_timeout_ms: int = field(default_factory=lambda: _env_int("FHIR_OUTBOUND_TIMEOUT_MS", 10000))
    outbound_max_bytes: int = field(default_factory=lambda: _env_int("FHIR_OUTBOUND_MAX_BYTES", 1024 * 1024))

    # A document both masked to professionals (MASQUE_PS) and invisible to the patient (INVISIBLE_PATIENT)
    # is refused unless this is on (FHIR_ALLOW_MASKED_INVISIBLE=1): nobody but its author would see it.
    allow_masked_invisible: bool = field(
        default_factory=lambda: os.environ.get("FHIR_ALLOW_MASKED_INVISIBLE", "").lower() in ("1", "true", "yes"))

    # The most bytes a document the patient adds may hold (issue 23): a file, or a Binary, over it is a 413.
    patient_document_max_bytes: int = field(
        default_factory=lambda: _env_int("FHIR_PATIENT_DOCUMENT_MAX_BYTES", 20 * 1024 * 1024))
    # The most bytes one attachment of a secure message may hold (issue 15): over it, a 413.
    message_attachment_max_bytes: int = field(
        default_factory=lambda: _env_int("FHIR_MESSAGE_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024))

    # Patient e-mail notifications (fhir_server.events.notifications). The SMTP server as
    # smtp://[user:password@]host[:port] (smtp+starttls:// to upgrade with STARTTLS, smtps:// for TLS
    # from the start); unset, each message is written to the mail spool in the data dir instead.
    smtp_url: str | None = field(default_factory=lambda: os.environ.get("FHIR_SMTP_URL") or None)
    mail_from: str = field(default_factory=lambda: os.environ.get("FHIR_MAIL_FROM") or "no-reply@localhost")
    # How often the documents that have just become visible to their patient are looked for.
    visibility_scan_seconds: float = field(
        default_factory=lambda: float(os.environ.get("FHIR_VISIBILITY_SCAN_SECONDS") or 3600))

    # How often the lifecycle scheduler looks for records whose next step is due (issue 14:
    # activation six weeks after the notice, purge at the end of the archive): days matter, not seconds.
    lifecycle_seconds: float = field(
        default_factory=lambda: float(os.environ.get("FHIR_LIFECYCLE_SECONDS") or 3600))
    # Tests only: `POST [base]/$lifecycle` runs a round at once for the platform or an operator
    # (FHIR_LIFECYCLE_RUN=1); off, the operation does not exist.
    lifecycle_run: bool = field(
        default_factory=lambda: os.environ.get("FHIR_LIFECYCLE_RUN", "").lower() in ("1", "true", "yes"))

    # How often the author of advance directives is reminded that they exist (CSP R.1111-19:
    # "un rappel de leur existence est régulièrement adressé à leur auteur"; issue 23: yearly).
    directive_reminder_days: float = field(
        default_factory=lambda: float(os.environ.get("FHIR_DIRECTIVE_REMINDER_DAYS") or 365))

    # Prevention reminders of the health agenda (fhir_server.agenda.reminders): "0" computes none.
    prevention_reminders: bool = field(
        default_factory=lambda: (os.environ.get("FHIR_PREVENTION_REMINDERS") or "1") != "0")

    # MLLP over TLS (all three given: client certificates signed by the CA are required).
    mllp_tls_cert: Path | None = None
    mllp_tls_key: Path | None = None
    mllp_tls_ca: Path | None = None

    # Issue 19: the trial sign-in of the app authorization pages (INS + a one-time code printed by
    # `fhir-server apps signin-code`), FHIR_TRIAL_SIGNIN=1. Off by default: production signs patients
    # in through an identity provider, and a server without one offers no sign-in at all.
    trial_signin: bool = field(
        default_factory=lambda: os.environ.get("FHIR_TRIAL_SIGNIN", "").lower() in ("1", "true", "yes"))

    def mllp_tls(self) -> ssl.SSLContext | None:
        if self.mllp_tls_cert is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.mllp_tls_cert, self.mllp_tls_key)
        if self.mllp_tls_ca is not None:
            context.load_verify_locations(self.mllp_tls_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def waivers(self) -> frozenset[str]:
        """The settings that are on among those that lift a rule of profiles/code-profiles.json (`waivedBy`)."""
        return frozenset(name for name in ("allow_masked_invisible",) if getattr(self, name))

    def page_size(self, asked: int | None) -> int:
        """The entries a page holds for a `_count` of `asked` (None: absent); 0 stays 0, the total alone."""
        return min(self.default_count if asked is None else asked, self.max_count)
