"""The vectorised expression engine: Seq filter and expression trees over columnar batches.

`evaluate(expr, batch)` gives the `Values` of an expression for every row of a `Batch`;
`filter_mask` the rows a filter selects.  The meaning of every operator is the one
`seqfast.testing.reference_eval` (the one-event oracle) gives it, undefined and three-valued
logic included; the differential tests check the two against each other on random batches.

How it stays fast:

* numbers are numpy arrays (float64, with exact int64 where every number is an integer);
* strings are compared by native kernels over the column's bytes, or once per distinct
  value when the column has a dictionary (most string columns of logs do: levels,
  templates, application names, paths); see `vector_strings`;
* free-text search looks at each distinct message template once: when the text occurs in a
  template's literal text every event of that template matches without rendering, and
  otherwise only events whose property values could make up the text are rendered
  (`vector_text`);
* arrays and objects, lambdas and wildcards take a per-row path: wildcards and lambdas
  evaluate their scope once over all elements of all rows (the rows repeated per element),
  then reduce per row.

`check(expr)` rejects, before any row is read, everything the engine does not evaluate
(functions and built-ins the oracle does not define, a regular expression that is invalid
or stands anywhere but beside `=`/`<>` or as the pattern of `Contains`, `StartsWith`,
`EndsWith`, `IndexOf` or `Replace`), with a `QueryError` naming it.

`Now()` is the `now_ticks` given to `evaluate` (ticks since 0001-01-01), else the instant
fixed for the running query (`query_clock`, so that every block of one query sees the same
`Now()`), else the clock when evaluation starts; callers that keep answers must not keep
those of filters using it.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, TypeVar

import numpy as np

from seqfast.query import ast as A
from seqfast.query import functions, vector_columns, vector_strings, vector_text
from seqfast.query.regex import compile_regex
from seqfast.query.values import (
    K_ARRAY,
    K_FALSE,
    K_NULL,
    K_NUMBER,
    K_STRING,
    K_TRUE,
    K_UNDEFINED,
    NUMBER_LIMIT,
    UNDEFINED,
    BoolArray,
    QueryError,
    Values,
    equal,
    fold,
    fold_deep,
)
from seqfast.storage import batch as B
from seqfast.storage.batch import Batch

__all__ = [
    "QueryError",
    "Values",
    "check",
    "columns_needed",
    "columns_needed_with_templates",
    "evaluate",
    "filter_mask",
]

_A = TypeVar("_A")
_B = TypeVar("_B")

_SCOPE_FUNCTIONS: Final = frozenset(("Contains", "StartsWith", "EndsWith"))
_ORDERINGS: Final = frozenset(("<", "<=", ">", ">="))
_ARITHMETIC: Final = frozenset(("+", "-", "*", "/", "%", "^"))
# Built-ins with a column of their own: reading them needs only that column.
_BUILT_IN_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "Timestamp": (),
    "Id": (),
    "Level": ("@l",),
    "Message": ("@m", "@mt", "@r"),
    "MessageTemplate": ("@mt", "@m"),
    "Exception": ("@x",),
    "EventType": ("@i", "@mt", "@m"),
    "Start": ("@st",),
    "Elapsed": ("@st",),
    "TraceId": ("@tr",),
    "SpanId": ("@sp",),
    "ParentId": ("@ps",),
    "SpanKind": ("@sk",),
    "Resource": ("@ra",),
    "Scope": ("@sa",),
}
_UNSUPPORTED_BUILT_INS: Final = frozenset(("Arrived",))
_EPOCH_TICKS: Final = 621_355_968_000_000_000  # 1970-01-01 in ticks since 0001-01-01


# --- the public interface ---------------------------------------------------------------------


def evaluate(expr: A.Node, batch: Batch, *, now_ticks: int | None = None) -> Values:
    """The value of `expr` for every row of `batch`.  A `Filter` evaluates as its
    expression (an empty one is true everywhere).  Raises QueryError for what `check`
    rejects, and for data the language gives no agreed meaning (see `check`).
    `now_ticks` (ticks since 0001-01-01) is what `Now()` gives; by default the clock."""
    node: A.Node | None = expr.expr if isinstance(expr, A.Filter) else expr
    if node is None:
        return Values.constant(True, batch.n)
    check(node)
    if now_ticks is None:
        now_ticks = _QUERY_NOW.get()
    if now_ticks is None:
        now_ticks = clock_ticks()
    return _Evaluator(batch, now_ticks).eval(node, _Env())


# The instant `Now()` gives within one query (None: read the clock), see `query_clock`.
_QUERY_NOW: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "seqfast_query_now", default=None
)


def clock_ticks() -> int:
    """The clock now, in ticks since 0001-01-01."""
    return time.time_ns() // 100 + _EPOCH_TICKS


@contextlib.contextmanager
def query_clock() -> Iterator[None]:
    """Within the block, `Now()` is the instant it was entered (one query, one `Now()`).
    Worker threads see it when they run in a copy of this context (`in_context`)."""
    token = _QUERY_NOW.set(_QUERY_NOW.get() or clock_ticks())
    try:
        yield
    finally:
        _QUERY_NOW.reset(token)


def in_context(fn: Callable[[_A], _B]) -> Callable[[_A], _B]:
    """`fn` running, in whatever thread calls it, in a copy of the caller's context (its
    query clock), one copy per call so that threads may run it at once."""
    context = contextvars.copy_context()

    def run(arg: _A) -> _B:
        return context.copy().run(fn, arg)

    return run


def filter_mask(
    filter: A.Filter | A.Node | None, batch: Batch, *, now_ticks: int | None = None
) -> BoolArray:
    """The rows `filter` selects: those where its value is exactly true."""
    if filter is None or (isinstance(filter, A.Filter) and filter.expr is None):
        return np.ones(batch.n, dtype=np.bool_)
    return evaluate(filter, batch, now_ticks=now_ticks).true_mask()


def columns_needed(expr: A.Node) -> set[str] | None:
    """The CLEF column names `expr` reads (None: it may read any column, as `@Properties`
    does, or as rendering a template does: its tokens name properties unknown in advance).
    A batch holding at least these columns gives the same values as the whole one."""
    needed, everything, renders = _named_columns(expr)
    return None if everything or renders else needed


def columns_needed_with_templates(expr: A.Node, templates: Iterable[str]) -> set[str] | None:
    """`columns_needed` once the block's distinct message templates (`@mt`) are known: free
    text and `@Message` then need only the properties those templates name.  None still
    means every column (`@Properties`)."""
    needed, everything, renders = _named_columns(expr)
    if everything:
        return None
    if renders:
        needed |= vector_text.template_columns(templates)
    return needed


def _named_columns(expr: A.Node) -> tuple[set[str], bool, bool]:
    """The columns `expr` names, whether it reads `@Properties` (every column), and whether
    it renders message templates (`@Message`, free text)."""
    needed: set[str] = set()
    everything = renders = False
    stack: list[A.Node] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, A.Filter):
            if node.expr is not None:
                stack.append(node.expr)
            continue
        if isinstance(node, A.Property):
            needed.add("@" + node.name if node.name.startswith("@") else node.name)
        elif isinstance(node, A.BuiltIn):
            everything = everything or node.name == "Properties"
            renders = renders or node.name == "Message"
            needed.update(_BUILT_IN_COLUMNS.get(node.name, ()))
        elif isinstance(node, A.TextSearch):
            needed.update(("@m", "@mt", "@r", "@x"))
            renders = True
        stack.extend(A.children(node))
    return needed, everything, renders


def check(expr: A.Node, *, allow_aggregates: bool = False) -> None:
    """Raises QueryError for anything in `expr` the engine does not evaluate.

    Aggregate calls are accepted only with `allow_aggregates` (their arguments are still
    checked); the caller evaluates the aggregate itself.
    """
    _Checker(allow_aggregates).visit(expr, in_scope=False, params=())


# --- checking ---------------------------------------------------------------------------------


def _is_scope(node: A.Node) -> bool:
    return (isinstance(node, A.Binary) and node.op in A.COMPARISONS) or (
        isinstance(node, A.Call) and node.name in _SCOPE_FUNCTIONS
    )


@dataclass
class _Checker:
    allow_aggregates: bool

    def visit(self, node: A.Node, *, in_scope: bool, params: tuple[str, ...]) -> None:
        if isinstance(node, A.Filter):
            if node.expr is not None:
                self.visit(node.expr, in_scope=False, params=params)
            return
        if isinstance(node, A.Regex):
            raise QueryError(
                "a regular expression (/…/) is only allowed beside = or <>, or as the "
                "pattern of Contains, StartsWith, EndsWith, IndexOf or Replace",
                node.span,
            )
        if isinstance(node, A.Star):
            raise QueryError("`*` is only allowed in count(*) and select *", node.span)
        if isinstance(node, A.BuiltIn) and (
            node.name in _UNSUPPORTED_BUILT_INS or node.name not in A.BUILT_INS
        ):
            raise QueryError(f"the built-in property @{node.name} is not supported", node.span)
        if isinstance(node, A.LambdaParameter) and node.name not in params:
            raise QueryError(f"{node.name} is used outside its lambda", node.span)
        if isinstance(node, A.Wildcard) and not in_scope:
            raise QueryError(
                "a wildcard ([?] or [*]) must be inside a comparison or a call of Contains, "
                "StartsWith or EndsWith",
                node.span,
            )
        if isinstance(node, A.Lambda):
            raise QueryError(
                "a lambda is only allowed as the second argument of Some/Every", node.span
            )
        if (
            isinstance(node, A.Binary)
            and node.op in ("like", "not like")
            and isinstance(node.right, A.String)
        ):
            vector_strings.check_like_pattern(node.right.value)
        if isinstance(node, A.Binary) and node.op in ("=", "<>"):
            if isinstance(node.left, A.Regex) and isinstance(node.right, A.Regex):
                raise QueryError("both sides of the comparison are regular expressions", node.span)
            for side, other in ((node.left, node.right), (node.right, node.left)):
                if isinstance(side, A.Regex):
                    _check_regex(side)
                    self.visit(other, in_scope=True, params=params)
                    return
        if isinstance(node, A.Call):
            self.call(node, params)
            return
        scope = in_scope or _is_scope(node)
        for child in A.children(node):
            self.visit(child, in_scope=scope, params=params)

    def call(self, node: A.Call, params: tuple[str, ...]) -> None:
        if node.aggregate:
            if not self.allow_aggregates:
                raise QueryError(
                    f"the aggregate {node.name}() is only allowed in a query's columns",
                    node.span,
                )
            for arg in node.args:
                if not isinstance(arg, A.Star):
                    self.visit(arg, in_scope=False, params=params)
            return
        if node.name in ("Some", "Every"):
            predicate = node.args[1] if len(node.args) == 2 else None
            if not isinstance(predicate, A.Lambda) or len(predicate.params) != 1:
                raise QueryError(
                    f"{node.name}() needs a collection and a lambda of one parameter, "
                    f"such as {node.name}(Items, |x| x > 1)",
                    node.span,
                )
            self.visit(node.args[0], in_scope=False, params=params)
            self.visit(predicate.body, in_scope=False, params=(*params, *predicate.params))
            return
        if node.name not in functions.FUNCTIONS:
            raise QueryError(f"the function {node.name}() is not supported", node.span)
        scope = node.name in _SCOPE_FUNCTIONS
        for position, arg in enumerate(node.args):
            if (
                position == 1
                and isinstance(arg, A.Regex)
                and node.name in functions.REGEX_FUNCTIONS
            ):
                _check_regex(arg)
                continue
            self.visit(arg, in_scope=scope, params=params)


def _check_regex(node: A.Regex) -> None:
    try:
        compile_regex(node.pattern, False)
    except ValueError as error:
        raise QueryError(str(error), node.span) from None


# --- evaluation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Env:
    params: Mapping[str, Values] = field(default_factory=dict)
    bound: Mapping[int, Values] = field(default_factory=dict)  # id(Wildcard) -> element

    def take(self, rows: np.ndarray) -> _Env:
        return _Env(
            {k: v.take(rows) for k, v in self.params.items()},
            {k: v.take(rows) for k, v in self.bound.items()},
        )


def _free_wildcards(scope: A.Node) -> list[A.Wildcard]:
    """The wildcards a scope quantifies, each after those in its own target."""
    found: list[A.Wildcard] = []

    def walk(node: A.Node) -> None:
        if isinstance(node, A.Lambda) or (node is not scope and _is_scope(node)):
            return
        if isinstance(node, A.Wildcard):
            walk(node.target)
            found.append(node)
            return
        for child in A.children(node):
            walk(child)

    walk(scope)
    return found


def booleans(mask: BoolArray, undefined: BoolArray | None = None) -> Values:
    """true/false per row, undefined where `undefined` is set."""
    kind = mask.astype(np.uint8)
    kind += K_FALSE  # K_TRUE is K_FALSE + 1
    if undefined is not None:
        kind[undefined] = K_UNDEFINED
    return Values(kind)


def _numbers(
    n: int, defined: BoolArray, result: np.ndarray, exact: np.ndarray | None = None
) -> Values:
    """Numbers where `defined` and the result is finite and in range, else undefined."""
    with np.errstate(all="ignore"):
        ok = defined & (np.abs(result) < NUMBER_LIMIT)
    kind = np.where(ok, K_NUMBER, K_UNDEFINED).astype(np.uint8)
    numbers = np.where(ok, result, 0.0)
    if exact is not None:
        exact = np.where(ok, exact, 0)
    return Values(kind, numbers, exact=exact)


def select(mask: BoolArray, a: Values, b: Values) -> Values:
    """Row by row: a's value where `mask`, else b's."""
    if bool(mask.all()):
        return a
    if not mask.any():
        return b
    n = a.n
    kind = np.where(mask, a.kind, b.kind).astype(np.uint8)
    numbers = np.where(mask, a.numbers, b.numbers)
    exact = None
    if a.exact is not None and b.exact is not None:
        exact = np.where(mask, a.exact, b.exact)
    elif bool((kind == K_NUMBER).any()):
        exact = None
    strings = None
    if bool((kind == K_STRING).any()) or bool((kind >= K_ARRAY).any()):
        a_off, a_data = a.dense_strings() if a.has_strings() else (np.zeros(n + 1, np.int64), b"")
        b_off, b_data = b.dense_strings() if b.has_strings() else (np.zeros(n + 1, np.int64), b"")
        both = np.concatenate([a_off, b_off[1:] - b_off[0] + a_off[-1]])
        data = bytes(a_data[: int(a_off[-1])]) + bytes(b_data[int(b_off[0]) :])
        # gather_strings reads string j as both[j]..both[j+1]; a's strings are 0..n-1 and
        # b's n..2n-1 (b's first offset rebased onto a's end).
        both = np.concatenate([a_off, b_off[1:] - b_off[0] + a_off[-1]])
        indices = np.where(mask, np.arange(n), n + np.arange(n)).astype(np.int64)
        from seqfast import _native

        strings = _native.gather_strings(both, data, indices)
    objects = None
    if bool((kind >= K_ARRAY).any()):
        objects = np.where(mask, a.objects(), b.objects())
    return Values(kind, numbers, exact=exact, strings=strings, objects=objects)


class _Evaluator:
    def __init__(self, batch: Batch, now_ticks: int) -> None:
        self.batch = batch
        self.now_ticks = now_ticks
        self.n = batch.n
        self._columns: dict[str, Values] = {}

    # -- dispatch ------------------------------------------------------------------------------

    def eval(self, node: A.Node, env: _Env) -> Values:
        if _is_scope(node):
            wildcards = _free_wildcards(node)
            if wildcards:
                return self.quantified(node, wildcards, env)
        return self.plain(node, env)

    def plain(self, node: A.Node, env: _Env) -> Values:
        n = self.n
        if isinstance(node, A.Number):
            return Values.constant(node.value, n)
        if isinstance(node, A.String | A.Boolean):
            return Values.constant(node.value, n)
        if isinstance(node, A.Null):
            return Values.constant(None, n)
        if isinstance(node, A.Duration):
            return Values.constant(node.ticks, n)
        if isinstance(node, A.Property):
            return self.column("@" + node.name if node.name.startswith("@") else node.name)
        if isinstance(node, A.BuiltIn):
            return self.built_in(node)
        if isinstance(node, A.LambdaParameter):
            return env.params[node.name]
        if isinstance(node, A.Wildcard):
            bound = env.bound.get(id(node))
            if bound is None:
                raise QueryError("a wildcard outside a comparison", node.span)
            return bound
        if isinstance(node, A.TextSearch):
            return booleans(vector_text.text_search(self.batch, node.text))
        if isinstance(node, A.Unary):
            return self.unary(node, env)
        if isinstance(node, A.Binary):
            return self.binary(node, env)
        if isinstance(node, A.Logical):
            return self.logical(node, env)
        if isinstance(node, A.IsNull):
            kind = self.eval(node.operand, env).kind
            return booleans(((kind == K_NULL) | (kind == K_UNDEFINED)) != node.negated)
        if isinstance(node, A.Conditional):
            condition = self.eval(node.condition, env).true_mask()
            return select(
                condition, self.eval(node.consequent, env), self.eval(node.alternative, env)
            )
        if isinstance(node, A.Member):
            return functions.member(self.eval(node.target, env), node.name)
        if isinstance(node, A.Index):
            return functions.element_at(
                self.eval(node.target, env), self.eval(node.index, env), ci=False
            )
        if isinstance(node, A.Array):
            return self.array(node, env)
        if isinstance(node, A.Object):
            return self.object(node, env)
        if isinstance(node, A.Call):
            return self.call(node, env)
        raise QueryError(f"{type(node).__name__} cannot be evaluated here", node.span)

    def column(self, name: str) -> Values:
        found = self._columns.get(name)
        if found is None:
            found = vector_columns.column_values(self.batch.columns.get(name), self.n)
            self._columns[name] = found
        return found

    def built_in(self, node: A.BuiltIn) -> Values:
        name = node.name
        batch = self.batch
        if name == "Timestamp":
            return vector_columns.timestamp_values(batch)
        if name == "Level":
            return vector_columns.level_values(batch)
        if name == "Message":
            return vector_text.message_values(batch)
        if name == "MessageTemplate":
            return vector_columns.message_template_values(batch)
        if name == "Id":
            return vector_columns.id_values(batch)
        if name == "Start":
            return vector_columns.start_values(batch)
        if name == "Elapsed":
            return vector_columns.elapsed_values(batch)
        if name == "EventType":
            return self.event_type()
        if name == "Properties":
            return vector_columns.properties_values(batch)
        column = vector_columns.SIMPLE_BUILT_INS.get(name)
        if column is not None:
            return self.column(column)
        raise QueryError(f"the built-in property @{name} is not supported", node.span)

    def event_type(self) -> Values:
        """`@EventType`: `@i` where the event carries it, else the hash of the template."""
        batch = self.batch
        given = self.column("@i").defined_mask()
        if bool(given.all()):
            return vector_columns.event_type_values(batch)
        template = vector_columns.message_template_values(batch)
        empty = Values.constant("", self.n)
        template = select(template.defined_mask(), template, empty)
        hashed = functions.FUNCTIONS["ToEventType"]([template], False)
        if not given.any():
            return hashed
        rows = np.flatnonzero(given)
        from_i = vector_columns.event_type_values(B.take(batch, rows)).to_python()
        out = hashed.to_python()
        for row, value in zip(rows.tolist(), from_i, strict=True):
            out[row] = value
        return Values.from_python(out)

    # -- wildcards and lambdas -----------------------------------------------------------------

    def expand(
        self, target: Values, env: _Env, needed: set[str] | None
    ) -> tuple[_Evaluator, _Env, np.ndarray, Values, BoolArray, np.ndarray]:
        """The rows repeated once per element of `target`'s collection: (evaluator over the
        repeated rows, env taken likewise, parent row of each element, the elements, which
        rows hold a collection, element count per row)."""
        is_collection = target.kind >= K_ARRAY
        counts = np.zeros(self.n, dtype=np.int64)
        elements: list[Any] = []
        objects = target.objects() if bool(is_collection.any()) else None
        for row in np.flatnonzero(is_collection).tolist():
            assert objects is not None
            value = objects[row]
            items = value if isinstance(value, list) else list(value.values())
            counts[row] = len(items)
            elements.extend(items)
        parent = np.repeat(np.arange(self.n, dtype=np.int64), counts)
        columns = self.batch.columns
        if needed is not None:
            columns = {k: v for k, v in columns.items() if k in needed}
        sub_batch = B.take(Batch(self.n, self.batch.ts, self.batch.seq, columns), parent)
        return (
            _Evaluator(sub_batch, self.now_ticks),
            env.take(parent),
            parent,
            Values.from_python(elements),
            is_collection,
            counts,
        )

    def reduce(
        self,
        quantifier: str,
        parent: np.ndarray,
        result: Values,
        is_collection: BoolArray,
        counts: np.ndarray,
    ) -> Values:
        hits = np.bincount(parent[result.true_mask()], minlength=self.n)
        passed = hits > 0 if quantifier == "any" else hits == counts
        return booleans(passed, undefined=~is_collection)

    def quantified(self, node: A.Node, wildcards: list[A.Wildcard], env: _Env) -> Values:
        if not wildcards:
            return self.plain(node, env)
        first, rest = wildcards[0], wildcards[1:]
        target = self.eval(first.target, env)
        sub, sub_env, parent, elements, is_collection, counts = self.expand(
            target, env, columns_needed(node)
        )
        bound = dict(sub_env.bound)
        bound[id(first)] = elements
        result = sub.quantified(node, rest, _Env(sub_env.params, bound))
        return self.reduce(first.quantifier, parent, result, is_collection, counts)

    def lambda_call(self, node: A.Call, env: _Env) -> Values:
        predicate = node.args[1]
        assert isinstance(predicate, A.Lambda)
        target = self.eval(node.args[0], env)
        sub, sub_env, parent, elements, is_collection, counts = self.expand(
            target, env, columns_needed(predicate.body)
        )
        params = dict(sub_env.params)
        params[predicate.params[0]] = elements
        result = sub.eval(predicate.body, _Env(params, sub_env.bound))
        return self.reduce(
            "any" if node.name == "Some" else "all", parent, result, is_collection, counts
        )

    # -- operators -----------------------------------------------------------------------------

    def unary(self, node: A.Unary, env: _Env) -> Values:
        value = self.eval(node.operand, env)
        kind = value.kind
        if node.op == "not":
            out = np.full(self.n, K_UNDEFINED, dtype=np.uint8)
            out[kind == K_UNDEFINED] = K_TRUE
            out[kind == K_TRUE] = K_FALSE
            out[kind == K_FALSE] = K_TRUE
            return Values(out)
        numeric = kind == K_NUMBER
        exact = None
        if value.exact is not None and not bool((value.exact[numeric] == -(2**63)).any()):
            exact = -value.exact
        return _numbers(self.n, numeric, -value.numbers, exact)

    def logical(self, node: A.Logical, env: _Env) -> Values:
        decisive = K_TRUE if node.op == "or" else K_FALSE
        other = K_FALSE if node.op == "or" else K_TRUE
        any_decisive = np.zeros(self.n, dtype=np.bool_)
        all_other = np.ones(self.n, dtype=np.bool_)
        for operand in node.operands:
            kind = self.eval(operand, env).kind
            any_decisive |= kind == decisive
            all_other &= kind == other
        out = np.full(self.n, K_UNDEFINED, dtype=np.uint8)
        out[all_other] = other
        out[any_decisive] = decisive
        return Values(out)

    def binary(self, node: A.Binary, env: _Env) -> Values:
        if node.op in ("=", "<>") and isinstance(node.right, A.Regex):
            operand = self.eval(node.left, env)
            return functions.regex_equals(operand, node.right.pattern, node.ci, node.op == "<>")
        if node.op in ("=", "<>") and isinstance(node.left, A.Regex):
            operand = self.eval(node.right, env)
            return functions.regex_equals(operand, node.left.pattern, node.ci, node.op == "<>")
        left = self.eval(node.left, env)
        right = self.eval(node.right, env)
        op = node.op
        undefined = (left.kind == K_UNDEFINED) | (right.kind == K_UNDEFINED)
        if op in ("=", "<>"):
            eq = equal_values(left, right, node.ci)
            return booleans(eq if op == "=" else ~eq, undefined)
        if op in ("in", "not in"):
            return self.membership(node, left, right, undefined)
        if op in ("like", "not like"):
            return self.like(node, left, right, undefined)
        if op in _ORDERINGS:
            return order_values(op, left, right)
        return arithmetic(op, left, right)

    def membership(
        self, node: A.Binary, left: Values, right: Values, undefined: BoolArray
    ) -> Values:
        is_array = right.kind == K_ARRAY
        found = np.zeros(self.n, dtype=np.bool_)
        if right.is_constant and isinstance(right.scalar, list):
            for item in right.scalar:
                found |= equal_values(left, Values.constant(item, self.n), node.ci)
        else:
            objects = right.objects()
            lefts = left.to_python()
            for row in np.flatnonzero(is_array & ~undefined).tolist():
                value = lefts[row]
                items = objects[row]
                if node.ci:
                    value, items = fold_deep(value), fold_deep(items)
                found[row] = any(equal(value, item) for item in items)
        result = found if node.op == "in" else ~found
        return booleans(result, undefined | ~is_array)

    def like(self, node: A.Binary, left: Values, right: Values, undefined: BoolArray) -> Values:
        both = (left.kind == K_STRING) & (right.kind == K_STRING)
        if right.is_constant and isinstance(right.scalar, str):
            matched = vector_strings.like(left, right.scalar, node.ci, both)
        else:
            matched = np.zeros(self.n, dtype=np.bool_)
            rows = np.flatnonzero(both)
            for row, text, pattern in zip(
                rows.tolist(), left.strings_at(rows), right.strings_at(rows), strict=True
            ):
                vector_strings.check_like_pattern(pattern)
                if node.ci:
                    text, pattern = fold(text), fold(pattern)
                matched[row] = vector_strings.like_match(pattern, text)
        result = matched if node.op == "like" else ~matched
        return booleans(result, ~both)

    def array(self, node: A.Array, env: _Env) -> Values:
        items = [self.eval(item, env) for item in node.items]
        if all(item.is_constant for item in items):
            value = [item.scalar for item in items if item.scalar is not UNDEFINED]
            return Values.constant(value, self.n)
        columns = [item.to_python() for item in items]
        rows = [[v for v in row if v is not UNDEFINED] for row in zip(*columns, strict=True)]
        return Values.from_python(rows if columns else [[] for _ in range(self.n)])

    def object(self, node: A.Object, env: _Env) -> Values:
        names = [name for name, _ in node.members]
        items = [self.eval(value, env) for _, value in node.members]
        if all(item.is_constant for item in items):
            value = {
                k: v.scalar for k, v in zip(names, items, strict=True) if v.scalar is not UNDEFINED
            }
            return Values.constant(value, self.n)
        columns = [item.to_python() for item in items]
        objects: list[Any] = []
        for i in range(self.n):
            members: dict[str, Any] = {}
            for name, column in zip(names, columns, strict=True):
                if column[i] is not UNDEFINED:
                    members[name] = column[i]
                else:
                    members.pop(name, None)
            objects.append(members)
        return Values.from_python(objects)

    def call(self, node: A.Call, env: _Env) -> Values:
        if node.name in ("Some", "Every"):
            return self.lambda_call(node, env)
        if node.name == "Now":
            return Values.constant(Decimal(self.now_ticks), self.n)
        if len(node.args) >= 2 and isinstance(node.args[1], A.Regex):
            regex_function = functions.REGEX_FUNCTIONS[node.name]
            others = [self.eval(arg, env) for i, arg in enumerate(node.args) if i != 1]
            return regex_function(others, node.args[1].pattern, node.ci)
        implementation = functions.FUNCTIONS.get(node.name)
        if implementation is None:
            raise QueryError(f"the function {node.name}() is not supported", node.span)
        args = [self.eval(arg, env) for arg in node.args]
        return implementation(args, node.ci)


# --- comparisons and arithmetic ---------------------------------------------------------------


def _string_constant(values: Values) -> str | None:
    return values.scalar if values.is_constant and isinstance(values.scalar, str) else None


def equal_values(a: Values, b: Values, ci: bool) -> BoolArray:
    """Per row: whether the two values are equal under `=` (False where either is undefined;
    the caller makes those rows undefined)."""
    n = a.n
    same = a.kind == b.kind
    eq: BoolArray = same & (a.kind >= K_NULL) & (a.kind <= K_TRUE)
    numbers = same & (a.kind == K_NUMBER)
    if numbers.any():
        if a.exact is not None and b.exact is not None:
            eq |= numbers & (a.exact == b.exact)
        else:
            eq |= numbers & (a.numbers == b.numbers)
    strings = same & (a.kind == K_STRING)
    if strings.any():
        constant = _string_constant(b)
        if constant is not None:
            eq |= vector_strings.match(a, constant, vector_strings.MODE_EQUALS, ci, strings)
        elif (constant := _string_constant(a)) is not None:
            eq |= vector_strings.match(b, constant, vector_strings.MODE_EQUALS, ci, strings)
        else:
            eq |= vector_strings.equal_pairs(a, b, ci, strings)
    collections = same & (a.kind >= K_ARRAY)
    if collections.any():
        rows = np.flatnonzero(collections)
        left, right = a.objects(), b.objects()
        for row in rows.tolist():
            x, y = left[row], right[row]
            if ci:
                x, y = fold_deep(x), fold_deep(y)
            eq[row] = equal(x, y)
    del n
    return eq


def _utf16(text: str) -> str:
    if all(ord(ch) < 0x10000 for ch in text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("latin-1")


def order_values(op: str, a: Values, b: Values) -> Values:
    """`<`, `<=`, `>`, `>=`: of two numbers or two strings (by UTF-16 code units)."""
    n = a.n
    compare: dict[str, Callable[[Any, Any], Any]] = {
        "<": lambda x, y: x < y,
        "<=": lambda x, y: x <= y,
        ">": lambda x, y: x > y,
        ">=": lambda x, y: x >= y,
    }
    fn = compare[op]
    numbers = (a.kind == K_NUMBER) & (b.kind == K_NUMBER)
    strings = (a.kind == K_STRING) & (b.kind == K_STRING)
    result = np.zeros(n, dtype=np.bool_)
    if numbers.any():
        if a.exact is not None and b.exact is not None:
            result |= numbers & fn(a.exact, b.exact)
        else:
            result |= numbers & fn(a.numbers, b.numbers)
    if strings.any():
        constant = _string_constant(b)
        if constant is not None and a.has_dictionary():
            codes, distinct = a.string_dictionary() or (np.zeros(0, np.int64), [])
            key = _utf16(constant)
            table = np.array([bool(fn(_utf16(t), key)) for t in distinct] + [False])
            result |= strings & table[np.where(codes >= 0, codes, len(distinct))]
        else:
            rows = np.flatnonzero(strings)
            for row, x, y in zip(
                rows.tolist(), a.strings_at(rows), b.strings_at(rows), strict=True
            ):
                result[row] = bool(fn(_utf16(x), _utf16(y)))
    return booleans(result, ~(numbers | strings))


def arithmetic(op: str, a: Values, b: Values) -> Values:
    n = a.n
    defined = (a.kind == K_NUMBER) & (b.kind == K_NUMBER)
    x, y = a.numbers, b.numbers
    exact = None
    with np.errstate(all="ignore"):
        if op == "+":
            result = x + y
        elif op == "-":
            result = x - y
        elif op == "*":
            result = x * y
        elif op == "/":
            defined = defined & (y != 0)
            result = x / np.where(y != 0, y, 1.0)
        elif op == "%":
            defined = defined & (y != 0)
            result = np.fmod(x, np.where(y != 0, y, 1.0))
        else:
            # Decimal power: 0^0 and 0^negative are errors, so undefined.
            defined = defined & ~((x == 0) & (y <= 0))
            result = np.power(x, y)
        # Exact while every defined result fits comfortably in int64.
        if (
            op in ("+", "-", "*")
            and a.exact is not None
            and b.exact is not None
            and not bool((defined & ~(np.abs(result) < 2.0**62)).any())
        ):
            ex, ey = a.exact, b.exact
            exact = ex + ey if op == "+" else ex - ey if op == "-" else ex * ey
            exact = np.where(defined, exact, 0)
        if op == "%" and a.exact is not None and b.exact is not None:
            ey = np.where(b.exact != 0, b.exact, 1)
            # Truncated remainder (sign of the dividend), as decimal's remainder.
            r = np.fmod(a.exact, ey)
            exact = np.where(defined, r, 0)
            result = r.astype(np.float64)
    result = np.where(np.isfinite(result), result, np.inf)
    del n
    return _numbers(a.n, defined, result, exact)
