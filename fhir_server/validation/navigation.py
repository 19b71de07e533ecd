"""Finds the parts of an instance an ElementDefinition id talks about.

`Patient.identifier:INS-NIR.system` resolves to the `system` of every identifier that belongs to
the INS-NIR slice, each with the FHIRPath-style expression a developer can act on
(`Patient.identifier[1].system`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Node:
    expression: str
    value: Any


class SliceMembership(Protocol):
    def matches(self, sliced_id: str, slice_name: str, value: Any) -> bool: ...


def split_element_id(element_id: str) -> tuple[str, str, str | None]:
    """`A.b:s` -> (parent id `A`, element name `b`, slice name `s`)."""
    parent_id, _, last = element_id.rpartition(".")
    name, _, slice_name = last.partition(":")
    return parent_id, name, slice_name or None


def child_nodes(parent: Node, name: str) -> list[Node]:
    """Values of element `name` under `parent`, one Node per repetition."""
    if not isinstance(parent.value, dict):
        return []
    if name.endswith("[x]"):
        prefix = name[:-3]
        keys = [k for k in parent.value if k.startswith(prefix) and len(k) > len(prefix) and k[len(prefix)].isupper()]
    else:
        keys = [name] if name in parent.value else []
    nodes: list[Node] = []
    for key in keys:
        value = parent.value[key]
        if isinstance(value, list):
            nodes.extend(Node(f"{parent.expression}.{key}[{i}]", item) for i, item in enumerate(value))
        else:
            nodes.append(Node(f"{parent.expression}.{key}", value))
    return nodes


class Navigator:
    def __init__(self, root: Node, slices: SliceMembership) -> None:
        self._root = root
        self._slices = slices
        self._resolved: dict[str, list[Node]] = {}

    @property
    def root(self) -> Node:
        return self._root

    def resolve(self, element_id: str) -> list[Node]:
        cached = self._resolved.get(element_id)
        if cached is not None:
            return cached
        if "." not in element_id:
            # The root element id is the type name (`DocumentReference`, `Extension`...).
            nodes = [self._root]
        else:
            parent_id, name, slice_name = split_element_id(element_id)
            nodes = []
            for parent in self.resolve(parent_id):
                nodes.extend(self.children(parent, parent_id, name, slice_name))
        self._resolved[element_id] = nodes
        return nodes

    def children(self, parent: Node, parent_id: str, name: str, slice_name: str | None) -> list[Node]:
        if slice_name is not None and name.endswith("[x]"):
            # Type slice of a choice element (`value[x]:valueBoolean`): the slice name is the JSON key.
            return child_nodes(parent, slice_name)
        nodes = child_nodes(parent, name)
        if slice_name is None:
            return nodes
        sliced_id = f"{parent_id}.{name}"
        return [node for node in nodes if self._slices.matches(sliced_id, slice_name, node.value)]
