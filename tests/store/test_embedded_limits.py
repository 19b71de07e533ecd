"""What the embedded store (nx-27017 0.8.1 over neosqlite 1.17.2) answers, right and wrong.

Every wrong answer is asserted as the wrong answer it is today, so an upgrade that fixes it (or
changes it) fails here and names the server decision to revisit. docs/EMBEDDED-STORE.md maps each
test to its behaviour and to how the server avoids it. Speeds are documented there, never asserted.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bson.binary import UUID_SUBTYPE, Binary
from gridfs import GridFSBucket
from pymongo import ASCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DocumentTooLarge, DuplicateKeyError, OperationFailure

from fhir_server.storage.database import EMBEDDED_PROCESS
from fhir_server.storage.embedded import EmbeddedStore

Doc = dict[str, Any]
N = 2000
MiB = 1024 * 1024
# Fields indexed in the `indexed` collection; the `plain` collection holds the same documents unindexed.
INDEXED_FIELDS = ["types", "tok.c", "code", "ix.pat", "seq", "num", "d.l", "name", "arr", "when", "at"]


def _generate(i: int) -> Doc:
    doc: Doc = {
        "_id": f"d{i:04d}",
        "seq": i,
        "code": f"k{i % 50}",
        "ix": {"pat": f"p{i % 40}"},
        "types": [f"t{i % 7}", f"u{i % 11}"],
        "tok": [{"s": "S", "c": f"c{i % 13}"}, {"s": "T", "c": f"x{i % 3}"}],
        "num": [i % 100, 1000 + i % 100],
        "d": [{"l": i % 100, "h": i % 100 + 5}],
        "name": [f"alpha{i % 9}", f"beta{i % 5}"],
        # Shaped like the server's stored date keys: an instant followed by a suffix.
        "when": f"2026-11-22T{14 + i % 3}:{i % 60:02d}:00.{i:06d}Z|d{i:04d}",
        # Two seconds, with fractions that only differ below the second.
        "at": f"2026-11-22T14:05:{i % 2:02d}.{(i % 10) * 100:06d}Z",
    }
    doc["t_when"] = "t" + doc["when"]
    doc["t_at"] = "t" + doc["at"]
    # Some documents lack `arr`, some have it empty, the rest have one element.
    if i % 8 == 4:
        doc["arr"] = []
    elif i % 8:
        doc["arr"] = [i]
    return doc


DOCS = [_generate(i) for i in range(N)]


def matching(predicate: Callable[[Doc], bool]) -> set[str]:
    """The right answer, computed from the generated data; never trivial, or the test proves nothing."""
    ids = {d["_id"] for d in DOCS if predicate(d)}
    assert 0 < len(ids) < N, "the generated data makes this query trivial"
    return ids


def answers(collection: Collection[Doc], query: Doc) -> tuple[set[str], int]:
    return {d["_id"] for d in collection.find(query, {"_id": 1})}, collection.count_documents(query)


def fixed(what: str) -> str:
    return (f"the embedded store now answers {what} correctly: revisit "
            "fhir_server/storage/database.py capabilities / the filters")


def pin_wrong(found: object, observed: object, truth: object, what: str) -> None:
    """`found` must still be `observed`, the wrong answer the store gives today."""
    assert observed != truth, f"the generated data no longer tells the wrong answer to {what} from the right one"
    if found == truth:
        pytest.fail(fixed(what))
    assert found == observed, f"the embedded store's wrong answer to {what} changed (see docs/EMBEDDED-STORE.md)"


def pin_right(found: object, truth: object, what: str) -> None:
    assert found == truth, f"the embedded store no longer answers {what} correctly, and the server relies on it"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    embedded = EmbeddedStore(tmp_path_factory.mktemp("embedded-limits"))
    url = embedded.start()
    yield url
    embedded.stop()


@pytest.fixture(scope="module")
def client(store: str) -> Iterator[MongoClient[Doc]]:
    with MongoClient(store) as connection:
        yield connection


@pytest.fixture(scope="module")
def db(client: MongoClient[Doc]) -> Database[Doc]:
    return client.get_database("limits")


@pytest.fixture(scope="module")
def indexed(db: Database[Doc]) -> Collection[Doc]:
    collection = db["indexed"]
    collection.insert_many(DOCS)
    for field in INDEXED_FIELDS:
        collection.create_index([(field, ASCENDING)], name="i_" + field.replace(".", "_"))
    return collection


@pytest.fixture(scope="module")
def plain(db: Database[Doc]) -> Collection[Doc]:
    collection = db["plain"]
    collection.insert_many(DOCS)
    return collection


@pytest.fixture(params=["indexed", "plain"])
def either(request: pytest.FixtureRequest) -> Collection[Doc]:
    """For behaviours that are the same with or without an index on the field."""
    return request.getfixturevalue(request.param)


# --- equality on arrays: wrong only when the array field is indexed ---------------------------

def test_equality_on_indexed_array_field_finds_nothing(indexed: Collection[Doc]) -> None:
    truth = matching(lambda d: "t3" in d["types"])
    found, counted = answers(indexed, {"types": "t3"})
    pin_wrong(found, set(), truth, "find() equality on an indexed array field")
    pin_right(counted, len(truth), "count_documents equality on an indexed array field")


def test_equality_on_unindexed_array_field_is_right(plain: Collection[Doc]) -> None:
    truth = matching(lambda d: "t3" in d["types"])
    pin_right(answers(plain, {"types": "t3"})[0], truth, "equality on an unindexed array field")


def test_in_on_indexed_array_field_is_right(indexed: Collection[Doc]) -> None:
    truth = matching(lambda d: "t3" in d["types"] or "u4" in d["types"])
    pin_right(answers(indexed, {"types": {"$in": ["t3", "u4"]}})[0], truth, "$in on an indexed array field")


def test_equality_on_indexed_dotted_path_into_array_finds_nothing(indexed: Collection[Doc]) -> None:
    truth = matching(lambda d: any(t["c"] == "c5" for t in d["tok"]))
    found, counted = answers(indexed, {"tok.c": "c5"})
    pin_wrong(found, set(), truth, "find() equality on an indexed dotted path into an array (tok.c)")
    pin_right(counted, len(truth), "count_documents equality on an indexed dotted path into an array")


def test_equality_on_unindexed_dotted_path_into_array_is_right(plain: Collection[Doc]) -> None:
    truth = matching(lambda d: any(t["c"] == "c5" for t in d["tok"]))
    pin_right(answers(plain, {"tok.c": "c5"})[0], truth, "equality on an unindexed dotted path into an array")


def test_equality_on_indexed_scalar_is_right(indexed: Collection[Doc]) -> None:
    truth = matching(lambda d: d["code"] == "k7")
    pin_right(answers(indexed, {"code": "k7"})[0], truth, "equality on an indexed top-level scalar")


def test_equality_on_indexed_dotted_scalar_is_right(indexed: Collection[Doc]) -> None:
    truth = matching(lambda d: d["ix"]["pat"] == "p7")
    pin_right(answers(indexed, {"ix.pat": "p7"})[0], truth, "equality on an indexed dotted scalar path (ix.pat)")


def test_range_on_indexed_scalar_is_right(indexed: Collection[Doc]) -> None:
    truth = matching(lambda d: 500 <= d["seq"] < 700)
    pin_right(answers(indexed, {"seq": {"$gte": 500, "$lt": 700}})[0], truth, "a range on an indexed scalar")


def test_sort_on_integer_id_is_in_string_order(db: Database[Doc]) -> None:
    collection = db["integer_ids"]
    collection.insert_many([{"_id": i, "n": i} for i in range(12)])
    by_id = [d["_id"] for d in collection.find({}, sort=[("_id", ASCENDING)])]
    pin_wrong(by_id, sorted(range(12), key=str), list(range(12)), "a sort on integer `_id`")
    by_field = [d["n"] for d in collection.find({}, sort=[("n", ASCENDING)])]
    pin_right(by_field, list(range(12)), "a sort on an integer field other than `_id`")


# --- operators ---------------------------------------------------------------------------------

def test_not_is_not_implemented(either: Collection[Doc]) -> None:
    truth = matching(lambda d: d["code"] != "k7")
    try:
        found = answers(either, {"code": {"$not": {"$eq": "k7"}}})[0]
    except OperationFailure as exc:
        assert "'$not' is not currently implemented" in str(exc)
    else:
        pytest.fail(fixed("$not") if found == truth else "the embedded store now accepts $not, wrongly")


def test_nor_is_right(either: Collection[Doc]) -> None:
    truth = matching(lambda d: d["code"] != "k7" and d["ix"]["pat"] != "p3")
    found, counted = answers(either, {"$nor": [{"code": "k7"}, {"ix.pat": "p3"}]})
    pin_right(found, truth, "$nor")
    pin_right(counted, len(truth), "count_documents with $nor")


def test_or_is_right(either: Collection[Doc]) -> None:
    truth = matching(lambda d: d["code"] == "k1" or d["ix"]["pat"] == "p2")
    found, counted = answers(either, {"$or": [{"code": "k1"}, {"ix.pat": "p2"}]})
    pin_right(found, truth, "$or of two equalities")
    pin_right(counted, len(truth), "count_documents with $or")


def test_and_is_right(either: Collection[Doc]) -> None:
    truth = matching(lambda d: d["code"] == "k1" and d["ix"]["pat"] == "p11")
    found, counted = answers(either, {"$and": [{"code": "k1"}, {"ix.pat": "p11"}]})
    pin_right(found, truth, "$and of two equalities")
    pin_right(counted, len(truth), "count_documents with $and")


def test_count_documents_is_right(either: Collection[Doc]) -> None:
    truth = matching(lambda d: d["code"] == "k7" and 100 <= d["seq"])
    pin_right(either.count_documents({"code": "k7", "seq": {"$gte": 100}}), len(truth), "count_documents")
    pin_right(either.count_documents({}), N, "count_documents of everything")


def test_regex_on_array_field_matches_nothing(either: Collection[Doc]) -> None:
    truth = matching(lambda d: "alpha3" in d["name"])
    found, counted = answers(either, {"name": {"$regex": "^alpha3"}})
    pin_wrong(found, set(), truth, "$regex on an array field")
    pin_wrong(counted, 0, len(truth), "count_documents with $regex on an array field")


def test_elem_match_regex_on_array_field_is_right(either: Collection[Doc]) -> None:
    truth = matching(lambda d: "alpha3" in d["name"])
    found = answers(either, {"name": {"$elemMatch": {"$regex": "^alpha3"}}})[0]
    pin_right(found, truth, "$elemMatch $regex on an array field")


def test_ne_on_array_field_matches_documents_holding_the_value(either: Collection[Doc]) -> None:
    truth = matching(lambda d: "t3" not in d["types"])
    found, counted = answers(either, {"types": {"$ne": "t3"}})
    pin_wrong(found, {d["_id"] for d in DOCS}, truth, "$ne on an array field")
    pin_right(counted, len(truth), "count_documents with $ne on an array field")


def test_nin_on_array_field_is_right(either: Collection[Doc]) -> None:
    truth = matching(lambda d: "t3" not in d["types"])
    pin_right(answers(either, {"types": {"$nin": ["t3"]}})[0], truth, "$nin on an array field")


def test_range_on_dotted_path_into_array_matches_nothing(either: Collection[Doc]) -> None:
    truth = matching(lambda d: any(10 < e["l"] < 20 for e in d["d"]))
    found, counted = answers(either, {"d.l": {"$gt": 10, "$lt": 20}})
    pin_wrong(found, set(), truth, "a range on a dotted path into an array of objects (d.l)")
    pin_wrong(counted, 0, len(truth), "count_documents with a range on a dotted path into an array")


def test_elem_match_range_on_array_of_objects_is_right(either: Collection[Doc]) -> None:
    truth = matching(lambda d: any(10 < e["l"] < 20 for e in d["d"]))
    found = answers(either, {"d": {"$elemMatch": {"l": {"$gt": 10, "$lt": 20}}}})[0]
    pin_right(found, truth, "$elemMatch with a range on an array of objects")


def test_range_on_array_of_numbers_is_wrong(either: Collection[Doc]) -> None:
    above = matching(lambda d: any(v > 1090 for v in d["num"]))
    found, counted = answers(either, {"num": {"$gt": 1090}})
    pin_wrong(found, {d["_id"] for d in DOCS}, above, "$gt on an array of numbers")
    pin_right(counted, len(above), "count_documents with $gt on an array of numbers")
    below = matching(lambda d: any(v < 10 for v in d["num"]))
    found, counted = answers(either, {"num": {"$lt": 10}})
    pin_wrong(found, set(), below, "$lt on an array of numbers")
    pin_right(counted, len(below), "count_documents with $lt on an array of numbers")


def test_elem_match_range_on_array_of_numbers_is_right(either: Collection[Doc]) -> None:
    truth = matching(lambda d: any(v > 1090 for v in d["num"]))
    found = answers(either, {"num": {"$elemMatch": {"$gt": 1090}}})[0]
    pin_right(found, truth, "$elemMatch $gt on an array of numbers")


def test_elem_match_with_or_matches_nothing(either: Collection[Doc]) -> None:
    truth = matching(lambda d: any(t["c"] in ("c5", "c6") for t in d["tok"]))
    found, counted = answers(either, {"tok": {"$elemMatch": {"$or": [{"c": "c5"}, {"c": "c6"}]}}})
    pin_wrong(found, set(), truth, "$elemMatch containing $or")
    pin_wrong(counted, 0, len(truth), "count_documents with $elemMatch containing $or")


def test_or_of_elem_matches_is_right(either: Collection[Doc]) -> None:
    truth = matching(lambda d: any(t["c"] in ("c5", "c6") for t in d["tok"]))
    query = {"$or": [{"tok": {"$elemMatch": {"c": "c5"}}}, {"tok": {"$elemMatch": {"c": "c6"}}}]}
    pin_right(answers(either, query)[0], truth, "a top-level $or of two $elemMatch")


def test_exists_on_array_element_matches_nothing(either: Collection[Doc]) -> None:
    truth = matching(lambda d: bool(d.get("arr")))
    found, counted = answers(either, {"arr.0": {"$exists": True}})
    pin_wrong(found, set(), truth, '{"arr.0": {"$exists": true}}')
    pin_wrong(counted, 0, len(truth), 'count_documents with {"arr.0": {"$exists": true}}')


def test_exists_on_array_field_is_right(either: Collection[Doc]) -> None:
    present = matching(lambda d: "arr" in d)
    pin_right(answers(either, {"arr": {"$exists": True}})[0], present, '{"arr": {"$exists": true}}')
    absent = matching(lambda d: "arr" not in d)
    pin_right(answers(either, {"arr": {"$exists": False}})[0], absent, '{"arr": {"$exists": false}}')


# --- strings that start like a date go through SQLite datetime() -------------------------------

def test_date_like_string_with_suffix_in_range_matches_nothing(either: Collection[Doc]) -> None:
    bound = "2026-11-22T14:30:00.000000Z"
    truth = matching(lambda d: d["when"] < bound)
    found, counted = answers(either, {"when": {"$lt": bound}})
    pin_wrong(found, set(), truth, "$lt on date-like strings with a suffix")
    pin_right(counted, len(truth), "count_documents with $lt on date-like strings")


def test_date_like_partial_bound_matches_nothing(either: Collection[Doc]) -> None:
    truth = matching(lambda d: d["when"] < "2026-11-22T15")
    found = answers(either, {"when": {"$lt": "2026-11-22T15"}})[0]
    pin_wrong(found, set(), truth, '$lt "2026-11-22T15" (a bound cut after the hour)')


def test_date_like_range_drops_fractions_of_a_second(either: Collection[Doc]) -> None:
    bound = "2026-11-22T14:05:00.000450Z"
    truth = matching(lambda d: d["at"] > bound)
    later_second = matching(lambda d: d["at"] >= "2026-11-22T14:05:01")
    found = answers(either, {"at": {"$gt": bound}})[0]
    pin_wrong(found, later_second, truth, "$gt on date-like strings below the second")


def test_date_like_equality_drops_fractions_of_a_second(either: Collection[Doc]) -> None:
    value = "2026-11-22T14:05:00.000400Z"
    truth = matching(lambda d: d["at"] == value)
    same_second = matching(lambda d: d["at"].startswith("2026-11-22T14:05:00"))
    pin_wrong(answers(either, {"at": value})[0], same_second, truth, "equality on date-like strings below the second")


def test_letter_prefixed_instants_compare_as_strings(either: Collection[Doc]) -> None:
    bound = "t2026-11-22T14:30:00.000000Z"
    pin_right(answers(either, {"t_when": {"$lt": bound}})[0], matching(lambda d: d["t_when"] < bound),
              '$lt on "t"-prefixed instants with a suffix')
    pin_right(answers(either, {"t_when": {"$lt": "t2026-11-22T15"}})[0],
              matching(lambda d: d["t_when"] < "t2026-11-22T15"), '$lt on a "t"-prefixed partial bound')
    fraction = "t2026-11-22T14:05:00.000450Z"
    pin_right(answers(either, {"t_at": {"$gt": fraction}})[0], matching(lambda d: d["t_at"] > fraction),
              '$gt on "t"-prefixed instants below the second')
    pin_right(answers(either, {"t_at": "t2026-11-22T14:05:00.000400Z"})[0],
              matching(lambda d: d["t_at"] == "t2026-11-22T14:05:00.000400Z"), 'equality on "t"-prefixed instants')


# --- indexes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [None, "i_source_reference"])
def test_index_on_field_with_dash_is_refused(db: Database[Doc], name: str | None) -> None:
    options = {} if name is None else {"name": name}
    try:
        db["dashes"].create_index([("source-reference", ASCENDING)], **options)
    except OperationFailure as exc:
        assert "Invalid identifier" in str(exc)
    else:
        pytest.fail(fixed("an index on a field whose name holds '-'") + " (fhir_server/search/fields.py)")


def test_index_name_given_is_ignored(indexed: Collection[Doc]) -> None:
    names = set(indexed.index_information())
    if "i_code" in names:
        pytest.fail(fixed("create_index(name=...)") + " (index_name)")
    assert "idx_indexed_code" in names, f"the embedded store names its indexes differently now: {sorted(names)}"


def test_unique_index_on_field_named_id_is_not_enforced(db: Database[Doc]) -> None:
    collection = db["unique_id"]
    collection.create_index([("id", ASCENDING)], unique=True, name="u_id")
    collection.insert_one({"id": "same"})
    try:
        collection.insert_one({"id": "same"})
    except DuplicateKeyError:
        pytest.fail(fixed("a unique index on a field named `id`"))
    assert collection.count_documents({"id": "same"}) == 2


@pytest.mark.parametrize("field", ["_id", "code"])
def test_unique_index_on_other_fields_is_enforced(db: Database[Doc], field: str) -> None:
    collection = db[f"unique_{field.strip('_')}"]
    if field != "_id":
        collection.create_index([(field, ASCENDING)], unique=True, name=f"u_{field}")
    collection.insert_one({field: "same"})
    with pytest.raises(DuplicateKeyError):
        collection.insert_one({field: "same"})
    pin_right(collection.count_documents({field: "same"}), 1, f"a unique index on `{field}`")


# --- transactions ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def other_client(store: str) -> Iterator[MongoClient[Doc]]:
    with MongoClient(store) as connection:
        yield connection


@pytest.fixture(scope="module")
def tx(db: Database[Doc]) -> Collection[Doc]:
    # Created outside any transaction: see test_collection_created_by_aborted_transaction_is_lost.
    return db.create_collection("tx")


def test_aborted_transaction_is_rolled_back(client: MongoClient[Doc], tx: Collection[Doc]) -> None:
    with client.start_session() as session:
        session.start_transaction()
        tx.insert_one({"_id": "rolled-back"}, session=session)
        tx.update_one({"_id": "rolled-back"}, {"$set": {"v": 1}}, session=session)
        session.abort_transaction()
    pin_right(tx.find_one({"_id": "rolled-back"}), None, "an aborted transaction")


def test_committed_transaction_is_visible(client: MongoClient[Doc], other_client: MongoClient[Doc],
                                          tx: Collection[Doc]) -> None:
    with client.start_session() as session:
        session.start_transaction()
        tx.insert_one({"_id": "committed"}, session=session)
        session.commit_transaction()
    pin_right(other_client[tx.database.name][tx.name].find_one({"_id": "committed"}), {"_id": "committed"},
              "a committed transaction")


def test_transaction_writes_are_visible_before_commit(client: MongoClient[Doc], other_client: MongoClient[Doc],
                                                       tx: Collection[Doc]) -> None:
    seen_by_other = other_client[tx.database.name][tx.name]
    with client.start_session() as session:
        session.start_transaction()
        tx.insert_one({"_id": "uncommitted"}, session=session)
        seen = seen_by_other.find_one({"_id": "uncommitted"})
        session.abort_transaction()
    pin_wrong(seen, {"_id": "uncommitted"}, None,
              "isolation of uncommitted transaction writes (isolated_transactions, storage/gate.py)")


def test_a_write_beside_an_open_transaction_is_undone_by_its_abort(client: MongoClient[Doc],
                                                                   other_client: MongoClient[Doc],
                                                                   tx: Collection[Doc]) -> None:
    beside = other_client[tx.database.name][tx.name]
    with client.start_session() as session:
        session.start_transaction()
        tx.insert_one({"_id": "in-transaction"}, session=session)
        beside.insert_one({"_id": "beside"})
        beside.create_index([("beside", ASCENDING)], name="i_beside")
        session.abort_transaction()
    found = (beside.find_one({"_id": "beside"}), "i_beside" in beside.index_information())
    pin_wrong(found, (None, False), ({"_id": "beside"}, True),
              "a write outside any transaction while another is open (BlobStore and Repository.ready hold the gate)")


def test_gridfs_beside_an_open_transaction_is_refused(client: MongoClient[Doc], other_client: MongoClient[Doc],
                                                      db: Database[Doc], tx: Collection[Doc]) -> None:
    # A bucket this store process has not used yet: its first operation sets PRAGMA synchronous.
    bucket = GridFSBucket(other_client[db.name], bucket_name="beside")
    with client.start_session() as session:
        session.start_transaction()
        tx.insert_one({"_id": "open"}, session=session)
        try:
            bucket.upload_from_stream("beside", b"x" * 1000)
            refused = ""
        except OperationFailure as exc:
            refused = str(exc)
        session.abort_transaction()
    if not refused:
        pytest.fail(fixed("GridFS while another transaction is open") + " (storage/binaries.py holds the gate)")
    assert "Safety level may not be changed inside a transaction" in refused, refused


ABANDON = """
import os, sys
from pymongo import MongoClient
client = MongoClient(sys.argv[1])
session = client.start_session()
session.start_transaction()
client[sys.argv[2]]["tx"].insert_one({"_id": "abandoned"}, session=session)
print(session.session_id["id"].hex(), flush=True)
os.kill(os.getpid(), 9)
"""


def test_a_transaction_whose_client_died_stays_open_until_its_session_ends(
        store: str, client: MongoClient[Doc], tx: Collection[Doc]) -> None:
    died = subprocess.run([sys.executable, "-c", ABANDON, store, tx.database.name], capture_output=True, text=True,
                          timeout=60)
    session_id = died.stdout.strip()
    assert died.returncode == -9 and len(session_id) == 32, died.stderr
    seen = tx.find_one({"_id": "abandoned"})
    # Another client's transaction runs inside it (a savepoint) and its commit leaves it open.
    with client.start_session() as session:
        session.start_transaction()
        tx.insert_one({"_id": "after-abandoned"}, session=session)
        session.commit_transaction()
    client.admin.command({"endSessions": [{"id": Binary(bytes.fromhex(session_id), UUID_SUBTYPE)}]})
    after_end = (tx.find_one({"_id": "abandoned"}), tx.find_one({"_id": "after-abandoned"}))
    pin_wrong(seen, {"_id": "abandoned"}, None,
              "a transaction whose client died (storage/gate.py marks open transactions and ends abandoned ones)")
    # Ending the dead client's session rolls back all of it, and what ran inside it.
    pin_right(after_end, (None, None), "endSessions of a session with an open transaction")


def test_collection_created_by_aborted_transaction_is_lost(client: MongoClient[Doc], db: Database[Doc]) -> None:
    lost = db["created_in_aborted_transaction"]
    with client.start_session() as session:
        session.start_transaction()
        lost.insert_one({"_id": "x"}, session=session)
        session.abort_transaction()
    # The store still believes the collection exists, so nothing recreates its table.
    db.create_collection(lost.name)
    assert lost.name not in db.list_collection_names(), fixed("create_collection after an aborted implicit creation")
    try:
        lost.create_index([("k", ASCENDING)])
    except OperationFailure as exc:
        assert "no such table" in str(exc)
    else:
        pytest.fail(fixed("a collection first created in an aborted transaction") + " (ensure_collections)")


def test_collection_created_explicitly_in_transaction_commits_its_writes(client: MongoClient[Doc],
                                                                         db: Database[Doc]) -> None:
    with client.start_session() as session:
        session.start_transaction()
        created = db.create_collection("created_in_transaction", session=session)
        created.insert_one({"_id": "kept"}, session=session)
        session.abort_transaction()
    pin_wrong(created.find_one({"_id": "kept"}), {"_id": "kept"}, None,
              "the abort of a transaction that created a collection (ensure_collections)")


# --- size and durability -----------------------------------------------------------------------

def test_document_over_16_mib_is_refused(client: MongoClient[Doc], db: Database[Doc]) -> None:
    assert client.admin.command("hello")["maxBsonObjectSize"] == 16 * MiB
    with pytest.raises(DocumentTooLarge):
        db["large"].insert_one({"_id": "too-large", "blob": b"x" * (17 * MiB)})


def test_gridfs_round_trips_20_mib(db: Database[Doc]) -> None:
    payload = random.Random(20).randbytes(20 * MiB)
    bucket = GridFSBucket(db, bucket_name="limits")
    file_id = bucket.upload_from_stream("payload", payload)
    assert bucket.open_download_stream(file_id).read() == payload, "GridFS no longer round-trips 20 MiB (binaries.py)"


def test_data_survive_a_restart(tmp_path: Path) -> None:
    first = EmbeddedStore(tmp_path)
    with MongoClient(first.start()) as connection:
        connection["restart"]["kept"].insert_many([{"_id": f"r{i:02d}", "v": i} for i in range(50)])
    first.stop()
    second = EmbeddedStore(tmp_path)
    try:
        with MongoClient(second.start()) as connection:
            kept = list(connection["restart"]["kept"].find({}, sort=[("_id", ASCENDING)]))
    finally:
        second.stop()
    pin_right(kept, [{"_id": f"r{i:02d}", "v": i} for i in range(50)], "data across a restart")


def test_build_info_says_it_is_nx_27017(client: MongoClient[Doc]) -> None:
    hello, build_info = client.admin.command("hello"), client.admin.command("buildInfo")
    # MongoDB's buildInfo has no `process`; the server tells the stores apart by it (database.py).
    assert build_info.get("process") == EMBEDDED_PROCESS, "the embedded store no longer names itself in buildInfo"
    assert isinstance(build_info.get("pid"), int), "buildInfo no longer gives the store's pid (database.check_store)"
    assert "setName" not in hello and hello.get("msg") != "isdbgrid"


def test_a_pid_file_naming_any_live_process_stops_a_start(tmp_path: Path) -> None:
    # Why the server clears a crashed store's pid file itself: nx-27017 only asks whether the pid
    # exists, so a zombie or an unrelated process (here: this test) makes it refuse to start.
    (tmp_path / "pid").write_text(str(os.getpid()))
    command = [sys.executable, "-c", "import sys; from nx_27017.nx_27017 import main; sys.exit(main())",
               "--data-dir", str(tmp_path / "store"), "--port", "0", "--log-file", str(tmp_path / "log"),
               "--pid-file", str(tmp_path / "pid")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, "nx-27017 now starts over a pid file naming a live process"
    assert f"NX-27017 is already running (PID: {os.getpid()})" in result.stderr
