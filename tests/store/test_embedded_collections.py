"""What the embedded store does with collection names and with collections that do not exist yet.

Pinned as the answers they are today (nx-27017 0.8.1): the server creates every type's collection
at start-up (fhir_server.app.open_repository) and stores Group as `Group_`
(fhir_server.storage.database.collection_name) because of them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import OperationFailure

from fhir_server.storage.database import collection_name
from fhir_server.storage.embedded import EmbeddedStore


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    embedded = EmbeddedStore(tmp_path_factory.mktemp("embedded-collections"))
    url = embedded.start()
    with MongoClient(url) as client:
        database = client.get_database("collections")
        database.create_collection("base")
        yield database
    embedded.stop()


def test_an_sql_keyword_cannot_name_a_collection(db: Database) -> None:
    # The name goes into SQL unquoted: `Group`, `Order`, `Select` are syntax errors.
    with pytest.raises(OperationFailure, match="syntax error"):
        db.create_collection("Group")
    with pytest.raises(OperationFailure, match="syntax error"):
        db["Group"].insert_one({"_id": "1"})
    db.create_collection(collection_name("Group"))
    db[collection_name("Group")].insert_one({"_id": "1"})
    assert db[collection_name("Group")].count_documents({}) == 1


def test_reading_a_missing_collection_inside_a_transaction_breaks_its_commit(db: Database) -> None:
    with db.client.start_session() as session:
        session.start_transaction()
        assert list(db["NeverCreated"].find({}, session=session)) == []
        db["base"].insert_one({"_id": "written"}, session=session)
        with pytest.raises(OperationFailure, match="No session specified"):
            session.commit_transaction()


def test_a_collection_created_in_an_aborted_transaction_is_half_there(db: Database) -> None:
    with db.client.start_session() as session:
        session.start_transaction()
        db["CreatedThenAborted"].insert_one({"_id": "1"}, session=session)
        session.abort_transaction()
    with pytest.raises(OperationFailure, match="no such table"):
        db["CreatedThenAborted"].count_documents({})
