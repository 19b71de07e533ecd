"""Server settings (pydantic-settings): the command line first, then the environment, then a `.env`
file in the current directory, then the defaults.

Each field `name` is read from the environment variable `FHIR_NAME` (MONGODB_URL for `mongodb_url`);
an empty variable counts as unset. `load_settings` validates them all at once and names every bad
value, one line each (`SettingsInvalid`), so an operator fixes them in one go; `fhir-server config`
prints what a command would use (`effective`), secrets masked.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "FHIR_"
# The field whose variable predates the prefix (and is the name every MongoDB tool knows).
ALIASES = {"mongodb_url": "MONGODB_URL"}
# `fhir-server config` masks a field whose name holds one of these, or declared with
# `Field(..., json_schema_extra=SECRET)` (a token or key held in a setting, whatever its name).
SECRET_WORDS = ("password", "secret", "api_key", "private_key")
SECRET = {"secret": True}
# Query parameters of a URL whose value is a secret (tlsCertificateKeyFilePassword, authMechanismProperties...).
URL_SECRET_WORDS = ("password", "secret", "key", "token", "authmechanismproperties")
# Fields holding a URL whose user:password part is a secret.
CREDENTIAL_URLS = ("mongodb_url", "smtp_url")
MASK = "***"
# `serve --workers`: beyond this, processes only compete for the same cores and the store's one writer.
MAX_WORKERS = 64
LogLevel = Literal["critical", "error", "warning", "info", "debug"]


class SettingInvalid(ValueError):
    """A setting cannot be used; the message, one line for the operator, names it and says why."""


class SettingsInvalid(SettingInvalid):
    """Several settings cannot be used: one line each in `problems`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", env_ignore_empty=True,
                                      extra="ignore", populate_by_name=True, validate_default=False)

    host: str = "127.0.0.1"
    # 0: any free port (the ready line says which).
    port: int = Field(default=8080, ge=0, le=65535)
    data_dir: Path = Path("./data")
    # Unset means: start the embedded MongoDB-wire-compatible store under data_dir.
    mongodb_url: str | None = Field(default=None, validation_alias=AliasChoices("mongodb_url", "MONGODB_URL"))
    database: str = "fhir"
    mllp_port: int | None = Field(default=None, ge=0, le=65535)
    # The database of the same MongoDB the audit trail goes to (FHIR_AUDIT_DATABASE); unset: `database` + "_audit".
    audit_database: str | None = None
    # Group commit of the audit trail: how long the first waiting event waits for others
    # (FHIR_AUDIT_GROUP_MS), and how many events end the wait at once (FHIR_AUDIT_GROUP_MAX).
    audit_group_ms: float = Field(default=1, ge=0)
    audit_group_max: int = Field(default=64, ge=1)
    # Bench-only (benchmarks/audit_cost.py's control run): FHIR_BENCH_WITHOUT_AUDIT=1 serves without
    # the audit trail, which the law forbids in any real use.
    bench_without_audit: bool = False
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    # `_count` when a search or history asks none, and the most any page holds (FHIR_MAX_COUNT); a
    # default above the most is that most (page_size), so lowering FHIR_MAX_COUNT alone is enough.
    default_count: int = Field(default=20, ge=0)
    max_count: int = Field(default=1000, ge=1)
    # Binary payloads above this size go to GridFS instead of the resource document (16 MB BSON limit).
    gridfs_threshold: int = Field(default=4 * 1024 * 1024, ge=1)
    profiles_dir: Path = PROJECT_ROOT / "profiles"
    # Public base URL used in Location headers and fullUrls; derived from the request when unset.
    base_url: str | None = None
    # Test and diagnostic only (fhir_server.storage.command_log): append every command the server
    # sends to the store, with the request that sent it, to this file (FHIR_COMMAND_LOG); unset: off.
    command_log: Path | None = None
    # The origins browser apps may call the API from (FHIR_CORS_ORIGINS, comma-separated
    # scheme://host[:port]; fhir_server.web.cors). Unset: none.
    cors_origins: str | None = None
    # Modules whose `register(hooks)` adds hooks at start-up (fhir_server.storage.hooks), comma-separated.
    hooks: str | None = None

    # Subscriptions (fhir_server.subscriptions.delivery): the first retry of a failed notification
    # waits this long, each next one twice as long (at most 5 minutes); after this many failures in
    # a row the Subscription's status is `error`; an endpoint has this long to answer.
    subscription_retry_ms: int = Field(default=1000, ge=1)
    subscription_error_after: int = Field(default=5, ge=1)
    subscription_timeout_ms: int = Field(default=10000, ge=1)

    # Calls the server makes (fhir_server.outbound): destinations allowed besides global addresses
    # over https (comma-separated CIDRs and host names), the longest a call may take, the most bytes
    # of an answer read.
    outbound_allow: str = ""
    outbound_timeout_ms: int = Field(default=10000, ge=1)
    outbound_max_bytes: int = Field(default=1024 * 1024, ge=1)

    # A document both masked to professionals (MASQUE_PS) and invisible to the patient (INVISIBLE_PATIENT)
    # is refused unless this is on (FHIR_ALLOW_MASKED_INVISIBLE=1): nobody but its author would see it.
    allow_masked_invisible: bool = False

    # The most bytes a document the patient adds may hold (issue 23): a file, or a Binary, over it is a 413.
    patient_document_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    # The most bytes one attachment of a secure message may hold (issue 15): over it, a 413.
    message_attachment_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1)

    # Patient e-mail notifications (fhir_server.events.notifications). The SMTP server as
    # smtp://[user:password@]host[:port] (smtp+starttls:// to upgrade with STARTTLS, smtps:// for TLS
    # from the start); unset, each message is written to the mail spool in the data dir instead.
    smtp_url: str | None = None
    mail_from: str = "no-reply@localhost"
    # How often the documents that have just become visible to their patient are looked for.
    visibility_scan_seconds: float = Field(default=3600, gt=0)

    # How often the lifecycle scheduler looks for records whose next step is due (issue 14:
    # activation six weeks after the notice, purge at the end of the archive): days matter, not seconds.
    lifecycle_seconds: float = Field(default=3600, gt=0)
    # Tests only: `POST [base]/$lifecycle` runs a round at once for the platform or an operator
    # (FHIR_LIFECYCLE_RUN=1); off, the operation does not exist.
    lifecycle_run: bool = False

    # How often the author of advance directives is reminded that they exist (CSP R.1111-19:
    # "un rappel de leur existence est régulièrement adressé à leur auteur"; issue 23: yearly).
    directive_reminder_days: float = Field(default=365, gt=0)

    # Prevention reminders of the health agenda (fhir_server.agenda.reminders): "0" computes none.
    prevention_reminders: bool = True

    # MLLP over TLS (all three given: client certificates signed by the CA are required).
    mllp_tls_cert: Path | None = None
    mllp_tls_key: Path | None = None
    mllp_tls_ca: Path | None = None

    # Bulk export (fhir_server.export): how long a finished export's files are kept
    # (FHIR_EXPORT_RETENTION_HOURS), and how often the process holding the export lease looks for
    # new jobs (FHIR_EXPORT_POLL_SECONDS; a kick-off in the same process wakes it at once).
    export_retention_hours: float = Field(default=24, gt=0)
    export_poll_seconds: float = Field(default=1, gt=0)

    # `serve`'s own: HTTPS, the proxies believed, the processes, the logs (issue 17).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    forwarded_allow_ips: str | None = None
    workers: int = Field(default=1, ge=1, le=MAX_WORKERS)
    log_level: LogLevel = "info"
    # json: one JSON object a line; text: for people; auto: text on a terminal, JSON otherwise.
    log_format: Literal["json", "text", "auto"] = "auto"

    @field_validator("rate_api_client", "rate_api_address", "rate_token", "rate_token_failures", "rate_signin_failures")
    @classmethod
    def _budget(cls, value: str, info: ValidationInfo) -> str:
        from fhir_server.limits import Budget  # here: that module imports this one

        return _parsed(Budget.parse, info.field_name, value)

    @field_validator("outbound_allow")
    @classmethod
    def _outbound(cls, value: str, info: ValidationInfo) -> str:
        from fhir_server.outbound import Policy  # here: that module imports this one

        return _parsed(lambda name, text: Policy.parse(text, 1.0, 1), info.field_name, value)

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str | None, info: ValidationInfo) -> str | None:
        from fhir_server.web.cors import parse_origins  # here: that module imports this one

        return value if value is None else _parsed(lambda name, text: parse_origins(text), info.field_name, value)

    # Who may sign tokens besides the server (fhir_server.security.tokens.trusted_issuers): a JSON
    # list, inline or in a file, of {issuer, jwks, claims?, kind?}, or `ISSUER=JWKS ...`. Unset: none.
    trusted_issuers: str | None = None
    # HL7 v2 senders (MSH-4, or MSH-3^MSH-4) taken over MLLP without a registered client, comma-separated;
    # `*` any (fhir_server.ingest.senders). Unset: registered clients only.
    mllp_senders: str = ""

    @field_validator("trusted_issuers")
    @classmethod
    def _issuers(cls, value: str | None, info: ValidationInfo) -> str | None:
        from fhir_server.security.tokens import trusted_issuers  # here: that module imports this one

        return value if value is None else _parsed(lambda name, text: trusted_issuers(text), info.field_name, value)

    # Issue 19: the trial sign-in of the app authorization pages (INS + a one-time code printed by
    # `fhir-server apps signin-code`), FHIR_TRIAL_SIGNIN=1. Off by default: production signs patients
    # in through an identity provider, and a server without one offers no sign-in at all.
    trial_signin: bool = False
    # Issue 19: patients sign in at this OpenID Connect provider (authorization code flow, the server
    # a confidential client with client_secret_post), when all three are set; the INS is the ID
    # token's claim `oidc_ins_claim`. FHIR_OIDC_ISSUER must be allowed by the outbound policy.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_ins_claim: str = "ins"
    oidc_scope: str = "openid"

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("mongodb_url")
    @classmethod
    def _mongodb_scheme(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("mongodb", "mongodb+srv"):
            raise ValueError("is not a mongodb:// or mongodb+srv:// URL")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc):
            raise ValueError("is not an http:// or https:// URL")
        return value

    # Rate limits (fhir_server.limits), each `N/S` (N requests per window of S seconds) or `off`:
    # FHIR API per caller and per address, token endpoint requests and failures, failed trial sign-ins
    # (issue 19: a one-time code is not guessed). Far above what the
    # tests and benchmarks send (issue 18: ~1,000 reads/s a server), so they never limit a
    # legitimate load; an operator lowers them to what their callers need.
    rate_api_client: str = "100000/60"
    rate_api_address: str = "200000/60"
    rate_token: str = "600/60"
    rate_token_failures: str = "20/300"
    rate_signin_failures: str = "10/300"

    @model_validator(mode="after")
    def _together(self) -> Settings:
        if self.mllp_tls_cert is None and (self.mllp_tls_key is not None or self.mllp_tls_ca is not None):
            raise ValueError("mllp_tls_key and mllp_tls_ca need mllp_tls_cert")
        return self

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


def _parsed(parse: Callable[[str, str], object], name: str | None, value: str) -> str:
    """`value` if the parser of its module takes it; its refusal, less the variable's name (the
    problem line names where the value came from), otherwise."""
    try:
        parse(variable(name or ""), value)
    except ValueError as exc:
        raise ValueError(str(exc).removeprefix(f"{variable(name or '')}: ")) from None
    return value


def variable(name: str) -> str:
    """The environment variable of the field `name`."""
    return ALIASES.get(name) or ENV_PREFIX + name.upper()


def option(name: str) -> str:
    """The command-line option of the field `name`."""
    return "--" + name.replace("_", "-")


def load_settings(given: dict[str, Any] | None = None) -> Settings:
    """The settings, with `given` (the command line's options that were given) over the rest, or
    SettingsInvalid naming every bad value, each by the option or variable it came from."""
    given = {name: value for name, value in (given or {}).items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise SettingsInvalid(problems(exc, given)) from None


def problems(error: ValidationError, given: dict[str, Any] | None = None) -> list[str]:
    """One line per bad value of `error`: where it came from, the value, what is wrong."""
    lines = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        field = next((name for name, alias in ALIASES.items() if alias == field), field)
        message = str(item["msg"]).removeprefix("Value error, ")
        if not field:
            lines.append(message)
            continue
        source = option(field) if field in (given or {}) else variable(field)
        shown = repr(item["input"])
        # A module's own refusal often starts with the value already.
        value = "" if message.startswith(shown) else f"{shown}: "
        lines.append(f"{source}: {value}{message[:1].lower() if value else message[:1]}{message[1:]}")
    return lines


def masked(name: str, value: object) -> object:
    """`value` as `fhir-server config` shows it: a secret hidden, a URL's password hidden."""
    if value is None:
        return None
    if isinstance(value, Path):
        # A key's file name is no secret; its content is not shown.
        return str(value)
    if name in CREDENTIAL_URLS:
        return masked_url(str(value))
    extra = Settings.model_fields[name].json_schema_extra if name in Settings.model_fields else None
    if any(word in name for word in SECRET_WORDS) or (isinstance(extra, dict) and extra.get("secret")):
        return MASK
    return value


def masked_url(url: str) -> str:
    """`url` with its password, and the values of query parameters naming a secret, hidden."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:{MASK}@{host}"
    query = "&".join(
        f"{key}={MASK}" if any(word in key.lower() for word in URL_SECRET_WORDS) and sep else f"{key}{sep}{val}"
        for key, sep, val in (pair.partition("=") for pair in parts.query.split("&") if pair))
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def effective(settings: Settings) -> dict[str, object]:
    """Every setting's value as the server would use it, secrets masked."""
    return {name: masked(name, getattr(settings, name)) for name in Settings.model_fields}
