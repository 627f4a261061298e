"""After aggregation: the value of a query column for one group, and results as JSON.

A column of an aggregate query is an expression over aggregates (`count(*) * 2`), group keys
(`@Level`), select aliases (in `having` and `order by`), `interval()` and constants.  Each
group has few such values, so this evaluator works on one group's Python values, with the
reference semantics (decimals, Kleene logic, undefined propagating).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_EVEN, Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from typing import Any, Final

from seqfast.query import ast
from seqfast.query.values import UNDEFINED, QueryError, equal, fold_deep

_CONTEXT: Final = Context(
    prec=28, rounding=ROUND_HALF_EVEN, Emax=28, traps=[InvalidOperation, DivisionByZero, Overflow]
)


def to_json(value: Any) -> Any:
    """A reference-shaped value as JSON-ready Python: integral numbers as int, others as
    float, undefined as None."""
    if value is UNDEFINED or value is None:
        return None
    if isinstance(value, bool | str):
        return value
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return int(value)
        return float(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def _arithmetic(op: str, a: Any, b: Any) -> Any:
    if not (isinstance(a, Decimal) and isinstance(b, Decimal)):
        return UNDEFINED
    operations: dict[str, Callable[[], Decimal]] = {
        "+": lambda: _CONTEXT.add(a, b),
        "-": lambda: _CONTEXT.subtract(a, b),
        "*": lambda: _CONTEXT.multiply(a, b),
        "/": lambda: _CONTEXT.divide(a, b),
        "%": lambda: _CONTEXT.remainder(a, b),
        "^": lambda: _CONTEXT.power(a, b),
    }
    try:
        result = operations[op]()
    except (ArithmeticError, ValueError):
        return UNDEFINED
    return result if result.is_finite() else UNDEFINED


def _order(op: str, a: Any, b: Any) -> Any:
    if isinstance(a, bool) or isinstance(b, bool):
        return UNDEFINED
    if not (
        (isinstance(a, Decimal) and isinstance(b, Decimal))
        or (isinstance(a, str) and isinstance(b, str))
    ):
        return UNDEFINED
    x: Any = a
    y: Any = b
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


class GroupEvaluator:
    """Evaluates column expressions for one group.

    `aggregates` maps each aggregate call (by structure) to its result, `keys` each grouping
    expression to the group's key, `aliases` the select aliases computed so far.
    """

    def __init__(
        self,
        aggregates: Mapping[ast.Node, Any],
        keys: Mapping[ast.Node, Any],
        aliases: Mapping[str, Any],
        interval: Decimal | None,
    ) -> None:
        self.aggregates = aggregates
        self.keys = keys
        self.aliases = aliases
        self.interval = interval

    def eval(self, node: ast.Node) -> Any:
        if node in self.aggregates:
            return self.aggregates[node]
        if node in self.keys:
            return self.keys[node]
        if isinstance(node, ast.Property) and node.name in self.aliases:
            return self.aliases[node.name]
        if isinstance(node, ast.Number | ast.String | ast.Boolean):
            return node.value
        if isinstance(node, ast.Null):
            return None
        if isinstance(node, ast.Duration):
            return node.ticks
        if isinstance(node, ast.Call) and node.name == "interval":
            return self.interval if self.interval is not None else UNDEFINED
        if isinstance(node, ast.Unary):
            value = self.eval(node.operand)
            if node.op == "not":
                if value is UNDEFINED:
                    return True
                return (not value) if isinstance(value, bool) else UNDEFINED
            return -value if isinstance(value, Decimal) else UNDEFINED
        if isinstance(node, ast.Logical):
            values = [self.eval(operand) for operand in node.operands]
            decisive = node.op == "or"
            if any(v is decisive for v in values):
                return decisive
            if all(v is (not decisive) for v in values):
                return not decisive
            return UNDEFINED
        if isinstance(node, ast.IsNull):
            value = self.eval(node.operand)
            return (value is None or value is UNDEFINED) != node.negated
        if isinstance(node, ast.Binary):
            return self.binary(node)
        raise QueryError(
            f"`{ast.to_source(node)}` is neither an aggregate nor a group key", node.span
        )

    def binary(self, node: ast.Binary) -> Any:
        left, right = self.eval(node.left), self.eval(node.right)
        if left is UNDEFINED or right is UNDEFINED:
            return UNDEFINED
        op = node.op
        if op in ("=", "<>"):
            if node.ci:
                left, right = fold_deep(left), fold_deep(right)
            return equal(left, right) == (op == "=")
        if op in ("in", "not in"):
            if not isinstance(right, list):
                return UNDEFINED
            if node.ci:
                left, right = fold_deep(left), fold_deep(right)
            return any(equal(left, item) for item in right) == (op == "in")
        if op in ("<", "<=", ">", ">="):
            return _order(op, left, right)
        if op in ("like", "not like"):
            raise QueryError("`like` over aggregates is not supported", node.span)
        return _arithmetic(op, left, right)
