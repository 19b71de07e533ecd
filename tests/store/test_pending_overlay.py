"""What a transaction's pending writes make of the documents they name (fhir_server.storage.pending.Overlay):
a read inside the transaction answers those ids from them and asks the store only about the others,
so it must replay the pending steps in their order exactly as the store will apply them."""

from __future__ import annotations

from typing import Any

from fhir_server.storage.pending import PendingWrites

SESSION = object()


def _pending() -> PendingWrites:
    pending = PendingWrites()
    pending.start(SESSION)  # type: ignore[arg-type]
    return pending


def test_inserts_and_deletes_replay_in_order() -> None:
    pending = _pending()
    pending.insert(SESSION, "lookup", [{"_id": "a", "k": "x"}, {"_id": "b", "k": "x"}])  # type: ignore[arg-type]
    pending.delete(SESSION, "lookup", ["a", "c"], "k", ["x", "y"])  # type: ignore[arg-type]
    pending.insert(SESSION, "lookup", [{"_id": "c", "k": "z"}])  # type: ignore[arg-type]
    overlay = pending.overlay(SESSION, "lookup")  # type: ignore[arg-type]
    assert overlay is not None
    # Inserted then deleted: gone; deleted then inserted: the new document.
    assert set(overlay.inserted) == {"b", "c"} and overlay.deleted == {"a"}
    assert overlay.named("a") and overlay.named("c") and not overlay.named("d")
    stored: list[dict[str, Any]] = [{"_id": "a", "k": "x"}, {"_id": "d", "k": "x"}]
    # The store's answer loses what the pending writes delete or replace, and gains what they insert.
    merged = overlay.merged(stored, lambda d: d["k"] == "x")
    assert [d["_id"] for d in merged] == ["d", "b"]


def test_an_upsert_leaves_the_answer_to_the_store() -> None:
    pending = _pending()
    pending.insert(SESSION, "claims", [{"_id": "a"}])  # type: ignore[arg-type]
    pending.upsert(SESSION, "claims", "a", {"$inc": {"n": 1}})  # type: ignore[arg-type]
    assert pending.overlay(SESSION, "claims") is None  # type: ignore[arg-type]
    # Other collections, and a collection with nothing pending, are still answered.
    empty = pending.overlay(SESSION, "ids")  # type: ignore[arg-type]
    assert empty is not None and not empty.inserted and not empty.deleted
