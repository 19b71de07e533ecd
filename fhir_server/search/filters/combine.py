"""Combining conditions into one MongoDB filter without a top-level `$and` unless unavoidable:
the embedded store stops using its indexes when it sees one."""

from __future__ import annotations

from typing import Any


# An `_id` no stored resource has (ids have 1 to 64 characters): an indexed equality matching nothing.
MATCH_NOTHING: dict[str, Any] = {"_id": ""}


def _scalar(key: str) -> bool:
    """Keys holding one value in every stored document (index values under `ix.` may be arrays, and
    so is the participant key `acc.par`: two conditions on it are not one intersection)."""
    return key in ("_id", "sid", "pat", "del") or (key.startswith("acc.") and key != "acc.par")


def _equality(value: Any) -> bool:
    """A plain value a key must equal (not an operator document)."""
    return not (isinstance(value, dict) and any(str(k).startswith("$") for k in value))


def _values(value: Any) -> list[Any] | None:
    """The values a condition allows when it is an equality or a plain `$in`, else None."""
    if _equality(value):
        return [value]
    if isinstance(value, dict) and list(value) == ["$in"] and isinstance(value["$in"], list):
        return list(value["$in"])
    return None


class FilterBuilder:
    def __init__(self) -> None:
        self._fields: dict[str, Any] = {}
        self._and: list[dict[str, Any]] = []
        self.impossible = False

    def add(self, condition: dict[str, Any]) -> None:
        for key, value in condition.items():
            if key not in self._fields:
                self._fields[key] = value
            elif self._fields[key] == value:
                # Said twice (a rule repeating the search's own `pat`): once is enough, and a
                # repeated key would otherwise become an `$and` the embedded store scans for.
                continue
            elif _scalar(key) and (had := _values(self._fields[key])) is not None \
                    and (wanted := _values(value)) is not None:
                # One single-valued key (a rule's `pat` and a search's `pat: {$in}`) takes the values
                # both allow: no `$and`, and nothing can match when they share none.
                both = [v for v in had if v in wanted]
                if not both:
                    self.impossible = True
                else:
                    self._fields[key] = both[0] if len(both) == 1 else {"$in": both}
            else:
                self._and.append({key: value})

    def any_of(self, conditions: list[dict[str, Any]]) -> None:
        """OR of conditions; a single one is added as is."""
        if not conditions:
            self.impossible = True
        elif len(conditions) == 1:
            self.add(conditions[0])
        else:
            self.add({"$or": conditions})

    def build(self) -> dict[str, Any]:
        if self.impossible:
            return dict(MATCH_NOTHING)
        result = dict(self._fields)
        if self._and:
            result["$and"] = self._and
        return result
