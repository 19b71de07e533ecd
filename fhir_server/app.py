"""The ASGI application: wiring of store, registries, repository, search engine and routes."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pymongo
from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from fhir_server import facilities
from fhir_server.api import (
    auth_routes,
    compartment_routes,
    error_handlers,
    hot_routes,
    export_routes,
    ingest_routes,
    instance_routes,
    lifecycle_routes,
    messaging_routes,
    openapi,
    operation_routes,
    system_routes,
    type_routes,
)
from fhir_server.apps import connections
from fhir_server.apps import pages as app_pages
from fhir_server.apps.grants import Grants
from fhir_server.apps.oidc import OidcProvider
from fhir_server.apps.registry import AppRegistry
from fhir_server.apps.token_grants import AppTokens
from fhir_server.audit import hooks as audit_hooks
from fhir_server.audit import routes as audit_routes
from fhir_server.audit.middleware import AuditTrail
from fhir_server.audit.mllp import audited
from fhir_server.audit.store import AuditStore
from fhir_server.audit.writer import AuditWriter
from fhir_server.config import Settings
from fhir_server.ingest.mllp import start_mllp_server
from fhir_server.events.dispatcher import Dispatcher
from fhir_server.events.notifications import Notifications
from fhir_server.interactions.history import HistoryInteraction
from fhir_server.record import lifecycle
from fhir_server.record.scheduler import Scheduler
from fhir_server.export.runner import Exporter
from fhir_server.interactions.search import SearchInteraction
from fhir_server.limits import Limiter, budgets as rate_budgets
from fhir_server.outbound import OutboundClient, Policy
from fhir_server.operations.capabilities import CapabilityBuilder
from fhir_server.search.engine import SearchEngine
from fhir_server.definitions import structure
from fhir_server.search.extract import extract_index
from fhir_server.search import stored_values
from fhir_server.search.indexed_fields import index_fields
from fhir_server.search.lookup import LookupTable
from fhir_server.search.page_tokens import PageTokens
from fhir_server.search.parameters import SearchParameterRegistry, parameter_files
from fhir_server.access import insurer, opposition, patient_entries, patient_scope, records, rules
from fhir_server.agenda import appointments, reminders
from fhir_server.agenda import operation as agenda_operation
from fhir_server.messaging import threads
from fhir_server.observability import health, ingest as observed_ingest, metrics
from fhir_server.observability.middleware import Observe
from fhir_server.api.authentication import Authentication
from fhir_server.api.rate_limits import AddressLimits, CallerLimits
from fhir_server.ingest.senders import MllpSenders
from fhir_server.security.clients import ClientRegistry
from fhir_server.security.granular import resource_matcher
from fhir_server.security.server_keys import server_secret
from fhir_server.security.signing import key_ring
from fhir_server.security.token_service import TokenService
from fhir_server.security.tokens import TokenVerifier, trusted_issuers
from fhir_server.storage.database import Database
from fhir_server.storage.hooks import AfterCommit, Hooks, load_modules
from fhir_server.storage.repository import Repository
from fhir_server.storage.sharding import IDS
from fhir_server.subscriptions import wiring as subscriptions
from fhir_server.subscriptions.websocket import router as subscription_socket
from fhir_server.validation.profile_registry import ProfileRegistry
from fhir_server.validation_step import make_validator
from fhir_server.web import pages
from fhir_server.web.cors import Cors, parse_origins
from fhir_server.web.layer import PageLayer
from fhir_server.web.session import CSRF_KEY, CsrfTokens
from fhir_server.web.templates import HERE as WEB_DIR
from fhir_server.write_rules import register_write_rules

# The secret `_page` tokens are signed with (fhir_server.search.page_tokens).
PAGE_KEY = "page-tokens"
OPERATIONS = [{"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"},
              {"name": "agenda", "definition": agenda_operation.DEFINITION},
              {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}]
IMPLEMENTATION_GUIDES = ["https://interop.esante.gouv.fr/ig/fhir/pdsm"]
# IHE MHD actors this server plays (ITI-65/105 recipient, ITI-66/67/68 responder).
INSTANTIATES = [
    "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentRecipient",
    "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentResponder",
    # FHIR Bulk Data Access 2.0.0 (fhir_server.export).
    "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data",
]

# What the store work of a shutdown may take in all (app lifespan).
SHUTDOWN_STORE_SECONDS = 2.0


def _indexer(registry: SearchParameterRegistry) -> Any:
    def index(resource: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        ix, sk = extract_index(resource, registry)
        return stored_values.encode(resource["resourceType"], ix, sk, resource["id"], registry)

    return index


async def open_repository(settings: Settings, store_url: str,
                          hooks: Hooks | None = None) -> tuple[Repository, ProfileRegistry]:
    """Connect, read the registries from `profiles/`, create the collections; `hooks` are those
    FHIR_HOOKS added, validation is registered as a before-write hook here.

    Every R4 resource type has its collection from the first start on (the embedded store cannot
    create one inside a transaction: a read of a missing collection there makes the commit fail).
    Nothing of a type is compiled or indexed until it is used (see Repository.ready).
    """
    search_registry = SearchParameterRegistry.load(parameter_files(settings.profiles_dir))
    profile_registry = ProfileRegistry.load(settings.profiles_dir, settings.waivers())
    resource_types = set(structure.resource_types())
    database = Database(store_url, settings.database, data_dir=settings.data_dir, command_log=settings.command_log)
    await database.connect()
    await database.ensure_collections([*sorted(resource_types), IDS])
    await database.ensure_history_indexes()
    await LookupTable(database.db).ensure_index()
    hooks = hooks or Hooks()
    validate = make_validator(profile_registry)
    hooks.before_writes.insert(0, lambda caller, resource: validate(resource))
    repository = Repository(database, resource_types, hooks, _indexer(search_registry),
                            index_fields(search_registry), settings.gridfs_threshold,
                            SearchEngine(search_registry, resource_types))
    await repository.ids_table.backfill(resource_types)
    register_write_rules(repository)
    facilities.register_write_rules(repository)
    opposition.register_write_rules(repository)
    records.register_write_rules(repository)
    # After the rules' summary: a death's closure and a purge are written on top of it.
    lifecycle.register_write_rules(repository)
    await patient_entries.register(repository, settings.patient_document_max_bytes)
    threads.register_write_rules(repository, settings.message_attachment_max_bytes)
    return repository, profile_registry


def record_hooks(settings: Settings, after_commit: AfterCommit) -> Hooks:
    """The hooks of every process that writes the record: the server, and the commands writing
    beside it (`fhir-server enrol`), whose versions carry the same keys and pass the same rules.
    A command's `after_commit` is never called (it runs no dispatcher); being there, it makes its
    writes leave their outbox events for the server's dispatcher."""
    hooks = Hooks()
    # SMART patient/ scopes reach only the patient in context, whatever else is configured.
    patient_scope.register(hooks)
    rules.register(hooks)
    # After the rules, which refuse any status change by professionals and systems.
    lifecycle.register(hooks)
    # Reimbursements (ExplanationOfBenefit) are written by the insurer alone.
    insurer.register(hooks)
    # Appointment status changes follow policies/appointment-status.json on every channel.
    appointments.register(hooks)
    # Only the server writes prevention reminders; the patient may dismiss one.
    reminders.register(hooks)
    # Secure messaging (issue 15): who writes what in a thread.
    threads.register(hooks)
    hooks.after_commits.append(after_commit)
    load_modules(hooks, settings.hooks)
    # The audit sees the records named before any rule refuses, and the versions every rule let through.
    audit_hooks.register_first(hooks)
    audit_hooks.register_last(hooks)
    return hooks


def create_app(settings: Settings, store_url: str, mllp_listener: socket.socket | None = None) -> FastAPI:
    """`mllp_listener` is the socket `settings.mllp_port` was bound to by the command (shared by
    its workers); without it the app binds that port itself. Raises HooksUnavailable when a module FHIR_HOOKS names cannot be loaded, MailSettingsInvalid
    when the mail settings cannot be used."""
    notifications = Notifications(settings)
    # The server recomputes a patient's prevention reminders after each write that may change them
    # (a command writing beside it leaves its events to the server's dispatcher).
    prevention = reminders.PreventionReminders(settings.prevention_reminders)
    hooks = record_hooks(settings, prevention.committed)
    # A batch hook: it reads what a dispatch round's documents need together.
    hooks.after_commit_batches.append(notifications.committed)
    # A death closes its record as soon as the write reporting it commits (fhir_server.record.scheduler).
    scheduler = Scheduler(settings.lifecycle_seconds)
    hooks.after_commits.append(scheduler.committed)
    exporter = Exporter(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Opened in each worker (after the fork); they all count in the one file of the data dir.
        app.state.limiter = Limiter.open(settings, budgets)
        repository, profiles = await open_repository(settings, store_url, hooks)
        app.state.repository = repository
        app.state.profiles = profiles
        app.state.audit_store = AuditStore.beside(repository.database, settings.audit_database)
        await app.state.audit_store.ensure()
        app.state.audit_writer = AuditWriter(app.state.audit_store, settings.audit_group_ms / 1000,
                                             settings.audit_group_max)
        key_dir = settings.data_dir if repository.database.capabilities.embedded else None
        secret = await server_secret(PAGE_KEY, data_dir=key_dir, db=repository.database.db)
        app.state.page_tokens = PageTokens(secret)
        app.state.csrf = CsrfTokens(await server_secret(CSRF_KEY, data_dir=key_dir, db=repository.database.db))
        # Read again every second: a `keys rotate` or `keys retire` reaches this process without a restart.
        keys = await key_ring(data_dir=key_dir, db=repository.database.db)
        keys.start()
        clients = ClientRegistry(repository.database.db)
        await clients.start()
        # The catalogue's apps (issue 19): their status and the grants revoked lately, read every second.
        apps = AppRegistry(repository.database)
        await apps.start()
        app.state.apps = apps
        app.state.grants = Grants(repository.database, apps)
        app.state.keys = keys
        # Every call the server makes (JWKS fetches, rest-hook deliveries) goes through it.
        outbound = OutboundClient(outbound_policy)
        app.state.oidc = OidcProvider.from_settings(settings, outbound)
        app.state.tokens = TokenVerifier(keys, trusted_issuers(settings.trusted_issuers, outbound), configured_base=settings.base_url,
                                         disabled_clients=clients.disabled, apps=apps)
        app.state.token_service = TokenService(repository.database, keys)
        app.state.app_tokens = AppTokens(repository.database, keys, app.state.grants)
        app.state.scope_matcher = resource_matcher(repository.engine.registry)
        app.state.search = SearchInteraction(repository, app.state.page_tokens, settings)
        app.state.history = HistoryInteraction(repository, app.state.page_tokens, settings)
        # Its after-commit hook is registered before the dispatcher is made.
        delivery = await subscriptions.start(repository, settings, clients.disabled, outbound)
        # With no after-commit hook registered, events wait in the outbox for the first one.
        dispatcher = Dispatcher(repository.database, repository.hooks) if repository.hooks.consumes_events else None
        if dispatcher is not None:
            repository.on_commit.append(dispatcher.wake)
            dispatcher.start()
        prevention.start(repository)
        notifications.start(repository, prevention)
        await scheduler.start(repository, app.state.audit_writer)
        await exporter.start(repository)
        app.state.exporter = exporter
        engine = repository.engine

        capabilities = CapabilityBuilder(sorted(repository.resource_types), engine.registry, profiles,
                                         OPERATIONS, IMPLEMENTATION_GUIDES, INSTANTIATES)

        def statement(base: str) -> dict[str, Any]:
            return audit_routes.advertised(
                subscriptions.advertise(capabilities.statement(base, auth_routes.capability_security(base)), base))

        app.state.capability_statement = statement
        mllp = None
        if settings.mllp_port is not None:
            senders = MllpSenders.from_setting(settings.mllp_senders, clients)
            handler = senders.handler(repository, app.state.search)
            mllp = await start_mllp_server(
                settings.host, settings.mllp_port,
                observed_ingest.observed(audited(handler, senders.caller, app.state.audit_writer)),
                tls=settings.mllp_tls(), sock=mllp_listener)
        # Its readiness is /health/ready's to tell.
        app.state.mllp_server = mllp
        # "ready" is said by the command that runs the server, once its port is serving.
        try:
            yield
        finally:
            if mllp is not None:
                mllp.close()
                await mllp.wait_closed()
            # Releasing the leases and ending the sessions are courtesies (leases expire in seconds):
            # a store already gone, as when a terminal's Ctrl-C reaches it too, must not hold the
            # stop up for a server-selection timeout each.
            with pymongo.timeout(SHUTDOWN_STORE_SECONDS):
                await clients.stop()
                await apps.stop()
                await keys.stop()
                await notifications.stop()
                await scheduler.stop()
                await exporter.stop()
                if dispatcher is not None:
                    await dispatcher.stop()
                await delivery.stop()
                await outbound.aclose()
                app.state.limiter.close()
                await app.state.audit_writer.close()
                await repository.database.close()

    # Read here, not in the lifespan (which uses them): a wrong FHIR_OUTBOUND_ALLOW or FHIR_RATE_*
    # stops the command once, before any worker forks (SettingInvalid).
    outbound_policy = Policy.from_settings(settings)
    budgets = rate_budgets(settings)
    app = FastAPI(title="FHIR server", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.settings = settings
    # Read here, so a wrong FHIR_CORS_ORIGINS stops the command before it forks workers (CorsSettingsInvalid).
    app.state.cors_origins = parse_origins(settings.cors_origins)
    error_handlers.install(app)
    # From the outside in: audit trail, address budget, authentication, caller budget, routes.
    app.add_middleware(CallerLimits)
    app.add_middleware(Authentication)
    app.add_middleware(AddressLimits)
    # Outside authentication (added later, so it wraps it): it audits refused tokens too.
    if not settings.bench_without_audit:
        app.add_middleware(AuditTrail)
    app.add_middleware(PageLayer)
    # Refusals from every layer inside carry the CORS headers a browser app needs to read them.
    app.add_middleware(Cors)
    # Outermost (fhir_server.observability.middleware): the request id, access log line and request
    # metrics see every answer, the refusals of every layer above included.
    app.add_middleware(Observe)
    metrics.start()
    # Each router's tags group its routes in the API reference (fhir_server.api.openapi.TAGS).
    app.include_router(health.router, tags=["operations"])
    app.include_router(metrics.router, tags=["operations"])
    app.include_router(openapi.router, tags=["operations"])
    app.include_router(pages.router)
    app.include_router(app_pages.router)
    app.include_router(openapi.pages)
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    app.include_router(auth_routes.router, tags=["auth"])
    # Before the generic type routes: AuditEvent is served from the audit store.
    app.include_router(audit_routes.router, tags=[openapi.FHIR_TAG])
    app.include_router(subscription_socket)
    app.include_router(ingest_routes.router, tags=["ingest"])
    app.include_router(system_routes.router, tags=[openapi.FHIR_TAG])
    app.include_router(operation_routes.router, tags=["FHIR operations"])
    app.include_router(export_routes.router, tags=["export"])
    app.include_router(agenda_operation.router, tags=["FHIR operations"])
    app.include_router(lifecycle_routes.router, tags=["FHIR operations"])
    app.include_router(connections.router, tags=["apps"])
    app.include_router(messaging_routes.router, tags=["FHIR operations"])
    app.include_router(type_routes.router, tags=[openapi.FHIR_TAG])
    app.include_router(instance_routes.router, tags=[openapi.FHIR_TAG])
    # After the instance routes: `/fhir/Patient/{id}/_history` is a history, not a compartment.
    app.include_router(compartment_routes.router, tags=[openapi.FHIR_TAG])
    # Last: it takes only the paths no route above could claim (fhir_server.api.hot_routes).
    hot_routes.install(app.router, {"search": type_routes.search_get, "read": instance_routes.read,
                                    "vread": instance_routes.vread, "create": type_routes.create},
                       structure.resource_types())
    return app
