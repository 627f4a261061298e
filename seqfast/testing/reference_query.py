"""A slow, plain executor of searches and `select` queries over CLEF-shaped events: the oracle
for `Store.search` and `Store.query`.

Every event is evaluated one at a time with `reference_eval`; groups are Python dicts; nothing
is clever.  The semantics are the ones `seqfast.query.aggregates` documents (nearest-rank
percentiles, `first`/`last` by timestamp among rows where the value is defined, `top`/`bottom`
by value, ...), and results have the same JSON-ready shape as `QueryResult`: integral numbers
as int, others as float, undefined as None.  Sums and means are computed exactly here (with
decimals) while the engine uses float64: compare those with a tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from seqfast.query import ast
from seqfast.query.parse import parse_filter, parse_query
from seqfast.storage.ids import UNIX_EPOCH_DOTNET_TICKS, format_ticks, parse_event_id
from seqfast.testing.reference_eval import UNDEFINED, evaluate, matches

__all__ = ["event_key", "run_query", "run_search"]


def event_key(event: Mapping[str, Any]) -> tuple[int, int]:
    """(ts, seq) of an event with an `@id`."""
    return parse_event_id(str(event["@id"]))


def _in_range(key: tuple[int, int], start: int | None, end: int | None) -> bool:
    return (start is None or key[0] >= start) and (end is None or key[0] < end)


def run_search(
    filters: Sequence[str | None],
    events: Iterable[Mapping[str, Any]],
    *,
    start: int | None = None,
    end: int | None = None,
    after_id: str | None = None,
    start_at_id: str | None = None,
    limit: int = 30,
) -> list[Mapping[str, Any]]:
    """The newest `limit` events that every filter selects, newest first."""
    parsed = [parse_filter(f or "") for f in filters]
    cursor = parse_event_id(after_id or start_at_id or "") if (after_id or start_at_id) else None
    chosen = []
    for event in events:
        key = event_key(event)
        if not _in_range(key, start, end):
            continue
        if cursor is not None and (key > cursor or (key == cursor and after_id is not None)):
            continue
        if all(matches(f, event) for f in parsed):
            chosen.append(event)
    chosen.sort(key=event_key, reverse=True)
    return chosen[: max(limit, 0)]


# --- values -----------------------------------------------------------------------------------


def to_json(value: Any) -> Any:
    if value is UNDEFINED or value is None:
        return None
    if isinstance(value, bool | str):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def _fold(value: Any) -> Any:
    if isinstance(value, str):
        return "".join(c.upper() if len(c.upper()) == 1 else c for c in value)
    if isinstance(value, list):
        return [_fold(v) for v in value]
    if isinstance(value, dict):
        return {k: _fold(v) for k, v in value.items()}
    return value


def _key(value: Any, ci: bool = False) -> Any:
    """Hashable, equal exactly when Seq's `=` says equal."""
    if ci:
        value = _fold(value)
    if value is UNDEFINED:
        return ("u",)
    if value is None:
        return ("z",)
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, Decimal):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, list):
        return ("a", tuple(_key(v) for v in value))
    return ("o", frozenset((k, _key(v)) for k, v in value.items()))


def _order(value: Any) -> tuple[Any, ...]:
    if value is UNDEFINED:
        return (0,)
    if value is None:
        return (1,)
    if isinstance(value, bool):
        return (2, value)
    if isinstance(value, Decimal):
        return (3, value)
    if isinstance(value, str):
        return (4, value)
    return (5, repr(value))


# --- aggregates -------------------------------------------------------------------------------


def _aggregate(call: ast.Call, rows: list[tuple[tuple[int, int], Mapping[str, Any]]]) -> Any:
    name, args = call.name, call.args
    if name == "count" and isinstance(args[0], ast.Star):
        return Decimal(len(rows))
    if name == "count" and isinstance(args[0], ast.Call) and args[0].name == "distinct":
        inner = args[0]
        values = [evaluate(inner.args[0], e) for _, e in rows]
        keys = {_key(v, inner.ci) for v in values if v is not UNDEFINED and v is not None}
        return Decimal(len(keys))
    values = [evaluate(args[0], e) for _, e in rows]
    numbers = [v for v in values if isinstance(v, Decimal) and not isinstance(v, bool)]
    if name == "count":
        return Decimal(sum(1 for v in values if v is not UNDEFINED and v is not None))
    if name == "sum":
        return sum(numbers, Decimal(0)) if numbers else UNDEFINED
    if name == "mean":
        return sum(numbers, Decimal(0)) / len(numbers) if numbers else UNDEFINED
    if name == "min":
        return min(numbers) if numbers else UNDEFINED
    if name == "max":
        return max(numbers) if numbers else UNDEFINED
    if name == "percentile":
        if not numbers:
            return UNDEFINED
        p = evaluate(args[1], {})
        ordered = sorted(numbers)
        rank = max(1, math.ceil(float(p) / 100 * len(ordered)))
        return ordered[rank - 1]
    if name in ("first", "last"):
        defined = [(key, v) for (key, _), v in zip(rows, values, strict=True) if v is not UNDEFINED]
        if not defined:
            return UNDEFINED
        chosen = (
            max(defined, key=lambda kv: kv[0])
            if name == "last"
            else min(defined, key=lambda kv: kv[0])
        )
        return chosen[1]
    if name == "any":
        return any(v is True for v in values)
    if name == "all":
        return all(v is True for v in values)
    if name == "distinct":
        seen: dict[Any, Any] = {}
        for v in values:
            if v is not UNDEFINED and v is not None:
                known = seen.get(_key(v, call.ci))
                if known is None or (call.ci and _order(v) < _order(known)):
                    seen[_key(v, call.ci)] = v
        return sorted(seen.values(), key=_order)
    if name in ("top", "bottom"):
        n = int(evaluate(args[1], {}))
        kept = [v for v in values if isinstance(v, Decimal | str) and not isinstance(v, bool)]
        kept.sort(key=_order, reverse=name == "top")
        return kept[:n]
    raise NotImplementedError(name)


def _post(node: ast.Node, values: Mapping[ast.Node, Any], aliases: Mapping[str, Any]) -> Any:
    """A column expression over aggregate results and group keys, evaluated with reference
    semantics by substituting them as literals."""
    if node in values:
        return values[node]
    if isinstance(node, ast.Property) and node.name in aliases:
        return aliases[node.name]
    if isinstance(node, ast.Unary | ast.Binary | ast.Logical | ast.IsNull):
        fields = {}
        if isinstance(node, ast.Unary):
            fields["operand"] = _literal(_post(node.operand, values, aliases))
            return evaluate(ast.Unary(node.op, fields["operand"]), {})
        if isinstance(node, ast.Binary):
            left = _literal(_post(node.left, values, aliases))
            right = _literal(_post(node.right, values, aliases))
            return evaluate(ast.Binary(node.op, left, right, node.ci), {})
        if isinstance(node, ast.IsNull):
            operand = _literal(_post(node.operand, values, aliases))
            return evaluate(ast.IsNull(operand, node.negated), {})
        operands = tuple(_literal(_post(o, values, aliases)) for o in node.operands)
        return evaluate(ast.Logical(node.op, operands), {})
    return evaluate(node, {})


def _literal(value: Any) -> ast.Expr:
    if value is UNDEFINED:
        return ast.Property("\x00undefined")  # no event has it: undefined
    if value is None:
        return ast.Null()
    if isinstance(value, bool):
        return ast.Boolean(value)
    if isinstance(value, Decimal):
        return ast.Number(abs(value)) if value >= 0 else ast.Unary("-", ast.Number(-value))
    if isinstance(value, str):
        return ast.String(value)
    if isinstance(value, list):
        return ast.Array(tuple(_literal(v) for v in value))
    return ast.Object(tuple((k, _literal(v)) for k, v in value.items()))


def _aggregates_in(node: ast.Node, out: list[ast.Call]) -> None:
    if isinstance(node, ast.Call) and node.aggregate:
        if node not in out:
            out.append(node)
        return
    for child in ast.children(node):
        _aggregates_in(child, out)


def _row_key(index: int, ci: bool) -> Callable[[tuple[Any, list[Any]]], tuple[Any, ...]]:
    def key(row: tuple[Any, list[Any]]) -> tuple[Any, ...]:
        value = row[1][index]
        return _order(_fold(value) if ci else value)

    return key


def run_query(
    text: str,
    events: Iterable[Mapping[str, Any]],
    *,
    start: int | None = None,
    end: int | None = None,
) -> tuple[list[str], list[list[Any]], list[dict[str, Any]] | None]:
    """(columns, rows, slices) of the query `text` over `events` (see the module docs)."""
    q = parse_query(text)
    selected = []
    for event in events:
        key = event_key(event)
        if not _in_range(key, start, end):
            continue
        if q.where is None or evaluate(q.where, event) is True:
            selected.append((key, event))
    names = [c.alias or ast.to_source(c.expr) for c in q.columns]
    calls: list[ast.Call] = []
    for column in q.columns:
        _aggregates_in(column.expr, calls)
    if q.having is not None:
        _aggregates_in(q.having, calls)
    keys = [g for g in q.group_by if isinstance(g, ast.Grouping)]
    times = [g for g in q.group_by if isinstance(g, ast.TimeGrouping)]
    if not calls and not q.group_by:
        selected.sort(key=lambda r: r[0], reverse=True)
        rows = [[to_json(evaluate(c.expr, e)) for c in q.columns] for _, e in selected[: q.limit]]
        return names, rows, None
    interval = int(times[0].interval.ticks) if times else None
    origin = 0 if start is None else start + UNIX_EPOCH_DOTNET_TICKS
    groups: dict[Any, tuple[Any, list[Any], list[tuple[tuple[int, int], Mapping[str, Any]]]]] = {}
    for key, event in selected:
        slot = (key[0] + UNIX_EPOCH_DOTNET_TICKS - origin) // interval if interval else None
        shown = [evaluate(g.expr, event) for g in keys]
        hashed = (slot, tuple(_key(v, g.ci) for v, g in zip(shown, keys, strict=True)))
        group = groups.setdefault(hashed, (slot, shown, []))
        group[2].append((key, event))
        for i, (mine, other) in enumerate(zip(group[1], shown, strict=True)):
            if keys[i].ci and _order(other) < _order(mine):
                group[1][i] = other  # a `ci` group shows its least spelling
    if not groups and not keys and interval is None:
        groups[None] = (None, [], [])
    key_names = [g.alias or ast.to_source(g.expr) for g in keys]
    out: list[tuple[Any, list[Any]]] = []
    for slot, shown, rows_in in groups.values():
        values: dict[ast.Node, Any] = {call: _aggregate(call, rows_in) for call in calls}
        aliases: dict[str, Any] = {}
        for g, v in zip(keys, shown, strict=True):
            values[g.expr] = v
            if g.alias:
                aliases[g.alias] = v
        row = list(shown)
        for column, name in zip(q.columns, names, strict=True):
            value = _post(column.expr, values, aliases)
            aliases[name] = value
            row.append(value)
        if q.having is not None and _post(q.having, values, aliases) is not True:
            continue
        rowset = calls and calls[0].name in ("distinct", "top", "bottom")
        if rowset:
            out.extend((slot, [*row[:-1], v]) for v in row[-1])
        else:
            out.append((slot, row))
    all_names = [*key_names, *names]
    # The `order by` items in their order, then the group keys (ascending) to break ties.
    explicit: list[tuple[int, bool, bool]] = []
    time_desc = False
    for o in q.order_by:
        if isinstance(o, ast.TimeOrdering):
            time_desc = o.descending
        else:
            explicit.append((all_names.index(o.alias), o.ci, o.descending))
    orderings = [*explicit, *((i, False, False) for i in range(len(key_names)))]
    for index, ci, desc in reversed(orderings):
        out.sort(key=_row_key(index, ci), reverse=desc)
    if interval is None:
        return all_names, [[to_json(v) for v in row] for _, row in out[: q.limit]], None
    out.sort(key=lambda r: r[0], reverse=time_desc)
    slices: list[dict[str, Any]] = []
    flat: list[list[Any]] = []
    for slot, row in out:
        stamp = format_ticks(origin + slot * interval - UNIX_EPOCH_DOTNET_TICKS)
        if not slices or slices[-1]["Time"] != stamp:
            slices.append({"Time": stamp, "Rows": []})
        if len(slices[-1]["Rows"]) < q.limit:
            converted = [to_json(v) for v in row]
            slices[-1]["Rows"].append(converted)
            flat.append([stamp, *converted])
    return ["time", *all_names], flat, slices
