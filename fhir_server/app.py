"""The ASGI application: wiring of store, registries, repository, search engine and routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from fhir_server.api import (
    compartment_routes,
    error_handlers,
    ingest_routes,
    instance_routes,
    operation_routes,
    system_routes,
    type_routes,
)
from fhir_server.config import Settings
from fhir_server.ingest.hl7v2.intake import ack_handler
from fhir_server.ingest.mllp import start_mllp_server
from fhir_server.operations.capabilities import CapabilityBuilder
from fhir_server.operations.transaction import TransactionService
from fhir_server.search.engine import SearchEngine
from fhir_server.definitions import structure
from fhir_server.search.extract import NOT_EXTRACTED, extract_index
from fhir_server.search import stored_values
from fhir_server.search.fields import ix_field
from fhir_server.search.lookup import LookupTable
from fhir_server.search.parameters import SearchParameterRegistry, parameter_files
from fhir_server.storage.database import Database
from fhir_server.storage.repository import Repository
from fhir_server.validation.profile_registry import ProfileRegistry
from fhir_server.validation_step import make_validator
from fhir_server.write_rules import register_write_rules

log = logging.getLogger("fhir_server")
# The part of a stored date range or quantity that a search compares first.
SUB_FIELD = {"date": ".l", "quantity": ".v"}
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


def _index_fields(registry: SearchParameterRegistry) -> Any:
    def fields(resource_type: str) -> tuple[list[str], list[str]]:
        """The fields searches compare: (scalars: single references; arrays: the other parameters).

        Dates and quantities are compared on their bounds and values (`l`, `v`); composite and
        `near` values only through sub-fields of several parts, which no one-field index serves.
        """
        scalar: list[str] = []
        arrays: list[str] = []
        for param in registry.for_type(resource_type):
            if not param.searchable or param.code in NOT_EXTRACTED or param.type in ("composite", "special"):
                continue
            if param.single and param.type == "reference":
                scalar.append(ix_field(param.code))
            else:
                arrays.append(ix_field(param.code) + SUB_FIELD.get(param.type, ""))
        return scalar, arrays

    return fields


async def open_repository(settings: Settings, store_url: str, *, embedded: bool) -> tuple[Repository, ProfileRegistry]:
    """Connect, read the registries from `profiles/`, create the collections.

    Every R4 resource type has its collection from the first start on (the embedded store cannot
    create one inside a transaction: a read of a missing collection there makes the commit fail).
    Nothing of a type is compiled or indexed until it is used (see Repository.ready).
    """
    search_registry = SearchParameterRegistry.load(parameter_files(settings.profiles_dir))
    profile_registry = ProfileRegistry.load(settings.profiles_dir)
    resource_types = set(structure.resource_types())
    database = Database(store_url, settings.database, embedded=embedded)
    await database.connect()
    await database.ensure_collections(sorted(resource_types))
    await database.ensure_history_indexes()
    await LookupTable(database.db).ensure_index()
    repository = Repository(database, resource_types, make_validator(profile_registry), _indexer(search_registry),
                            _index_fields(search_registry), settings.gridfs_threshold)
    repository.search_engine = SearchEngine(database, search_registry, resource_types)
    register_write_rules(repository)
    return repository, profile_registry


def create_app(settings: Settings, store_url: str, *, embedded: bool) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        repository, profiles = await open_repository(settings, store_url, embedded=embedded)
        app.state.repository = repository
        app.state.profiles = profiles
        engine = repository.engine

        capabilities = CapabilityBuilder(sorted(repository.resource_types), engine.registry, profiles,
                                         OPERATIONS, IMPLEMENTATION_GUIDES, INSTANTIATES)
        app.state.capability_statement = capabilities.statement
        mllp = None
        if settings.mllp_port is not None:
            mllp = await start_mllp_server(settings.host, settings.mllp_port, ack_handler(TransactionService(repository)))
        store = f"embedded store under {settings.data_dir / 'store'}" if embedded else "MongoDB at MONGODB_URL"
        log.info("ready: FHIR R4 at http://%s:%s/fhir, %s%s", settings.host, settings.port, store,
                 f", HL7 v2 MLLP on port {settings.mllp_port}" if mllp is not None else "")
        try:
            yield
        finally:
            if mllp is not None:
                mllp.close()
                await mllp.wait_closed()
            await repository.database.close()

    app = FastAPI(title="FHIR server", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.settings = settings
    error_handlers.install(app)
    app.include_router(ingest_routes.router)
    app.include_router(system_routes.router)
    app.include_router(operation_routes.router)
    app.include_router(type_routes.router)
    app.include_router(instance_routes.router)
    # After the instance routes: `/fhir/Patient/{id}/_history` is a history, not a compartment.
    app.include_router(compartment_routes.router)
    return app
