"""The ASGI application: wiring of store, registries, repository, search engine and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from fhir_server.api import auth_routes, error_handlers, ingest_routes, instance_routes, operation_routes, system_routes, type_routes
from fhir_server.config import Settings
from fhir_server.ingest.mllp import start_mllp_server
from fhir_server.events.dispatcher import Dispatcher
from fhir_server.interactions.history import HistoryInteraction
from fhir_server.interactions.search import SearchInteraction
from fhir_server.operations.capabilities import capability_statement
from fhir_server.search.engine import SearchEngine
from fhir_server.search.extract import extract_index
from fhir_server.search import stored_values
from fhir_server.search.fields import ix_field
from fhir_server.search.lookup import LookupTable
from fhir_server.search.page_tokens import PageTokens
from fhir_server.search.parameters import SearchParameterRegistry
from fhir_server.api.authentication import Authentication
from fhir_server.ingest.senders import MllpSenders
from fhir_server.security.clients import ClientRegistry
from fhir_server.security.granular import resource_matcher
from fhir_server.security.server_keys import server_secret
from fhir_server.security.signing import server_signer
from fhir_server.security.token_service import TokenService
from fhir_server.security.tokens import TokenVerifier, issuers_from_environment
from fhir_server.storage.database import Database
from fhir_server.storage.hooks import Hooks, load_modules
from fhir_server.storage.repository import Repository
from fhir_server.validation.profile_registry import ProfileRegistry
from fhir_server.validation_step import make_validator
from fhir_server.write_rules import register_write_rules

# The secret `_page` tokens are signed with (fhir_server.search.page_tokens).
PAGE_KEY = "page-tokens"
OPERATIONS = [{"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}]
IMPLEMENTATION_GUIDES = ["https://interop.esante.gouv.fr/ig/fhir/pdsm"]
# IHE MHD actors this server plays (ITI-65/105 recipient, ITI-66/67/68 responder).
INSTANTIATES = [
    "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentRecipient",
    "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentResponder",
]


def _indexer(registry: SearchParameterRegistry) -> Any:
    def index(resource: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        ix, sk = extract_index(resource, registry)
        return stored_values.encode(resource["resourceType"], ix, sk, resource["id"], registry)

    return index


async def open_repository(settings: Settings, store_url: str,
                          hooks: Hooks | None = None) -> tuple[Repository, ProfileRegistry]:
    """Connect, load the registries from `profiles/`, create collections and indexes; `hooks` are
    those FHIR_HOOKS added, validation is registered as a before-write hook here."""
    search_registry = SearchParameterRegistry.load(settings.profiles_dir / "SearchParameter")
    profile_registry = ProfileRegistry.load(settings.profiles_dir)
    # The types served are those with a SearchParameter file: adding a type is adding its data.
    resource_types = {p.stem for p in (settings.profiles_dir / "SearchParameter").glob("*.json")} - {"Resource"}
    database = Database(store_url, settings.database, data_dir=settings.data_dir)
    await database.connect()
    await database.ensure_collections(sorted(resource_types))
    await database.ensure_history_indexes()
    await LookupTable(database.db).ensure_index()
    for rtype in sorted(resource_types):
        params = search_registry.for_type(rtype)
        await database.ensure_indexes(
            rtype,
            [ix_field(p.code) for p in params if p.single and p.type == "reference"],
            [ix_field(p.code) for p in params if not (p.single and p.type == "reference")],
        )
    hooks = hooks or Hooks()
    validate = make_validator(profile_registry)
    hooks.before_writes.insert(0, lambda caller, resource: validate(resource))
    repository = Repository(database, resource_types, hooks, _indexer(search_registry), settings.gridfs_threshold,
                            SearchEngine(search_registry, resource_types))
    register_write_rules(repository)
    return repository, profile_registry


def create_app(settings: Settings, store_url: str) -> FastAPI:
    """Raises HooksUnavailable when a module FHIR_HOOKS names cannot be loaded."""
    hooks = Hooks()
    load_modules(hooks, settings.hooks)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        repository, profiles = await open_repository(settings, store_url, hooks)
        app.state.repository = repository
        app.state.profiles = profiles
        key_dir = settings.data_dir if repository.database.capabilities.embedded else None
        secret = await server_secret(PAGE_KEY, data_dir=key_dir, db=repository.database.db)
        app.state.page_tokens = PageTokens(secret)
        signer = await server_signer(data_dir=key_dir, db=repository.database.db)
        clients = ClientRegistry(repository.database.db)
        await clients.start()
        app.state.signer = signer
        app.state.tokens = TokenVerifier(signer, issuers_from_environment(), configured_base=settings.base_url,
                                         disabled_clients=clients.disabled)
        app.state.token_service = TokenService(repository.database, signer)
        app.state.scope_matcher = resource_matcher(repository.engine.registry)
        app.state.search = SearchInteraction(repository, app.state.page_tokens, settings)
        app.state.history = HistoryInteraction(repository, app.state.page_tokens, settings)
        # With no after-commit hook registered, events wait in the outbox for the first one.
        dispatcher = Dispatcher(repository.database, repository.hooks) if repository.hooks.after_commits else None
        if dispatcher is not None:
            repository.on_commit.append(dispatcher.wake)
            dispatcher.start()
        engine = repository.engine

        def statement(base: str) -> dict[str, Any]:
            return capability_statement(base, sorted(repository.resource_types), engine.registry, profiles,
                                        OPERATIONS, IMPLEMENTATION_GUIDES, INSTANTIATES, auth_routes.capability_security(base))

        app.state.capability_statement = statement
        mllp = None
        if settings.mllp_port is not None:
            senders = MllpSenders.from_environment(clients)
            mllp = await start_mllp_server(settings.host, settings.mllp_port,
                                           senders.handler(repository, app.state.search), tls=settings.mllp_tls())
        # "ready" is said by the command that runs the server, once its port is serving.
        try:
            yield
        finally:
            if mllp is not None:
                mllp.close()
                await mllp.wait_closed()
            await clients.stop()
            if dispatcher is not None:
                await dispatcher.stop()
            await repository.database.close()

    app = FastAPI(title="FHIR server", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.settings = settings
    error_handlers.install(app)
    app.add_middleware(Authentication)
    app.include_router(auth_routes.router)
    app.include_router(ingest_routes.router)
    app.include_router(system_routes.router)
    app.include_router(operation_routes.router)
    app.include_router(type_routes.router)
    app.include_router(instance_routes.router)
    return app
