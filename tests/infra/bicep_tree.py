"""Bicep files read with tree-sitter-bicep, as Python values the policy tests can assert on.

Literals become Python values (``'TLS1_2'`` → ``"TLS1_2"``, ``false`` → ``False``, objects →
``dict``, arrays → ``list``); anything the template only knows at deployment time (a parameter,
a function call, an interpolated string) becomes an :class:`Expr` holding its source text.

tree-sitter-bicep 1.1.0 predates the ``extension`` statement (Microsoft Graph Bicep): files
using it are parsed with those statements blanked out, and :attr:`BicepFile.extensions` keeps
what was blanked, so nothing else in such a file escapes the syntax check.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import tree_sitter
import tree_sitter_bicep

_EXTENSION_STATEMENT = re.compile(rb"(?m)^extension\s+\S.*$")
_ESCAPES = {"\\'": "'", "\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\$": "$"}


@cache
def _parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))


@dataclass(frozen=True)
class Expr:
    """An expression evaluated at deployment time, kept as its source text."""

    text: str


@dataclass(frozen=True)
class Loop:
    """``[for x in xs: body]``; ``body`` is the converted body (conditions dropped)."""

    text: str
    body: Any


@dataclass
class Declaration:
    """One top-level ``param``, ``var``, ``resource``, ``module`` or ``output``.

    ``type`` is the resource type (``Microsoft.Storage/storageAccounts@2023-05-01``), the module
    path, or the param/output type; ``comment`` is a ``//`` comment on the same line, if any.
    """

    kind: str
    name: str
    type: str | None
    value: Any
    decorators: dict[str, list[Any]] = field(default_factory=dict)
    comment: str | None = None
    existing: bool = False
    node: tree_sitter.Node | None = None

    @property
    def body(self) -> Any:
        """The object of a resource or module, looking through a loop."""
        return self.value.body if isinstance(self.value, Loop) else self.value


def to_value(node: tree_sitter.Node) -> Any:
    """A syntax node as a Python value, or :class:`Expr` for anything not literal."""
    kind = node.type
    if kind == "object":
        result: dict[str, Any] = {}
        for prop in node.named_children:
            if prop.type != "object_property":
                continue
            key_node, value_node = prop.named_children[0], prop.named_children[-1]
            key = to_value(key_node) if key_node.type == "string" else _text(key_node)
            result[key if isinstance(key, str) else _text(key_node)] = to_value(value_node)
        return result
    if kind == "array":
        return [to_value(child) for child in node.named_children if child.type != "comment"]
    if kind == "string":
        parts = node.named_children
        if all(part.type in ("string_content", "escape_sequence") for part in parts):
            return "".join(
                _ESCAPES.get(_text(part), _text(part))
                if part.type == "escape_sequence"
                else _text(part)
                for part in parts
            )
        return Expr(_text(node))
    if kind == "number":
        return int(_text(node))
    if kind == "boolean":
        return _text(node) == "true"
    if kind == "null":
        return None
    if kind == "for_statement":
        body = node.child_by_field_name("body")
        if body is not None and body.type == "if_statement":
            body = body.named_children[-1]
        return Loop(_text(node), to_value(body) if body is not None else None)
    if kind == "if_statement":
        return to_value(node.named_children[-1])
    return Expr(_text(node))


def _text(node: tree_sitter.Node) -> str:
    return node.text.decode("utf-8") if node.text is not None else ""


@dataclass
class BicepFile:
    path: Path
    tree: tree_sitter.Tree
    extensions: list[str]

    @classmethod
    def load(cls, path: Path) -> BicepFile:
        source = path.read_bytes()
        extensions = [m.group(0).decode() for m in _EXTENSION_STATEMENT.finditer(source)]
        # Blank, not delete: line numbers in error reports stay true.
        blanked = _EXTENSION_STATEMENT.sub(lambda m: b" " * len(m.group(0)), source)
        return cls(path, _parser().parse(blanked), extensions)

    def syntax_errors(self) -> list[str]:
        """``line N: ERROR <text>`` for each ERROR or MISSING node."""
        problems = []
        stack = [self.tree.root_node]
        while stack:
            node = stack.pop()
            if node.is_error or node.is_missing:
                label = "MISSING" if node.is_missing else "ERROR"
                problems.append(f"line {node.start_point[0] + 1}: {label} {_text(node)[:80]!r}")
            stack.extend(node.children)
        return problems

    def declarations(self, kind: str | None = None) -> Iterator[Declaration]:
        pending_decorators: dict[str, list[Any]] = {}
        children = self.tree.root_node.children
        for index, node in enumerate(children):
            if node.type == "decorators":
                for decorator in node.named_children:
                    call = decorator.named_children[0]
                    if call.type == "call_expression":
                        name = _text(call.child_by_field_name("function"))  # type: ignore[arg-type]
                        args = call.child_by_field_name("arguments")
                        values = [to_value(a) for a in args.named_children] if args else []
                        pending_decorators[name] = values
                continue
            decl_kind = node.type.removesuffix("_declaration")
            if decl_kind not in ("parameter", "variable", "resource", "module", "output"):
                continue
            decl_kind = {"parameter": "param", "variable": "var"}.get(decl_kind, decl_kind)
            named = [child for child in node.named_children if child.type != "comment"]
            name = _text(named[0])
            declared_type: str | None = None
            value_node: tree_sitter.Node | None = None
            if decl_kind == "var":
                value_node = named[-1]
            else:  # param/output: name type [= value]; resource/module: name 'type-or-path' = value
                type_node = named[1]
                converted = to_value(type_node) if type_node.type == "string" else None
                declared_type = converted if isinstance(converted, str) else _text(type_node)
                value_node = named[2] if len(named) > 2 else None
            existing = any(child.type == "existing" for child in node.children)
            comment = None
            following = children[index + 1] if index + 1 < len(children) else None
            if (
                following is not None
                and following.type == "comment"
                and following.start_point[0] == node.end_point[0]
            ):
                comment = _text(following).lstrip("/").strip()
            declaration = Declaration(
                kind=decl_kind,
                name=name,
                type=declared_type,
                value=to_value(value_node) if value_node is not None else None,
                decorators=pending_decorators,
                comment=comment,
                existing=existing,
                node=value_node,
            )
            pending_decorators = {}
            if kind is None or kind == decl_kind:
                yield declaration

    def get(self, kind: str, name: str) -> Declaration:
        for declaration in self.declarations(kind):
            if declaration.name == name:
                return declaration
        raise KeyError(f"{self.path.name}: no {kind} named {name}")

    def resolve(self, value: Any) -> Any:
        """``value``, or if it names a ``var`` of this file, that variable's value (recursively)."""
        if isinstance(value, Expr) and value.text.isidentifier():
            for declaration in self.declarations("var"):
                if declaration.name == value.text:
                    return self.resolve(declaration.value)
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        return value

    def resources(self, type_prefix: str) -> list[Declaration]:
        """Resources (not ``existing`` references) whose type is ``type_prefix@<version>``."""
        return [
            d
            for d in self.declarations("resource")
            if d.type is not None and d.type.split("@")[0] == type_prefix and not d.existing
        ]


def objects_within(node: tree_sitter.Node) -> list[dict[str, Any]]:
    """The outermost object literals inside ``node`` (such as lambda bodies), converted."""
    if node.type == "object":
        return [to_value(node)]
    found: list[dict[str, Any]] = []
    for child in node.named_children:
        found.extend(objects_within(child))
    return found


def walk_values(value: Any) -> Iterator[Any]:
    """Every value nested in ``value``, ``value`` included."""
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk_values(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_values(item)
    elif isinstance(value, Loop):
        yield from walk_values(value.body)
