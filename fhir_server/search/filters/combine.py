"""Combining conditions into one MongoDB filter without a top-level `$and` unless unavoidable:
the embedded store stops using its indexes when it sees one."""

from __future__ import annotations

from typing import Any


class FilterBuilder:
    def __init__(self) -> None:
        self._fields: dict[str, Any] = {}
        self._and: list[dict[str, Any]] = []
        self.impossible = False

    def add(self, condition: dict[str, Any]) -> None:
        for key, value in condition.items():
            if key in self._fields or key in ("$or", "$nor") and key in self._fields:
                self._and.append({key: value})
            else:
                self._fields[key] = value

    def any_of(self, conditions: list[dict[str, Any]]) -> None:
        """OR of conditions; a single one is added as is."""
        if not conditions:
            self.impossible = True
        elif len(conditions) == 1:
            self.add(conditions[0])
        else:
            self.add({"$or": conditions})

    def build(self) -> dict[str, Any]:
        result = dict(self._fields)
        if self._and:
            result["$and"] = self._and
        return result
