"""Which columns of a block a filter's evaluation reads before it starts.

A filter that names its columns reads just those.  One that searches text or reads
`@Message` would read every column (its templates may name any property); instead it gets a
`PartialBatch` holding the columns it names, and the search reads the properties its
templates name only where a match could involve them (`vector_text`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from seqfast.query import ast, vector
from seqfast.query.partial_batch import PartialBatch, Strings
from seqfast.storage.batch import Batch
from seqfast.storage.segment import ColumnStats


def _scoped(expr: ast.Node) -> bool:
    """Whether `expr` evaluates part of itself over collection elements (wildcards,
    lambdas), where the evaluation builds batches of its own from the columns at hand."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Wildcard | ast.Lambda):
            return True
        stack.extend(ast.children(node))
    return False


def filter_batch(
    read: Callable[[Collection[str] | None], Batch],
    stats: Mapping[str, ColumnStats] | None,
    strings: Callable[[str], Strings] | None,
    expr: ast.Node,
    columns: set[str] | None,
) -> Batch:
    """The block as `expr` is evaluated on: `columns` (None: every column), read by `read`.
    With the block's column statistics at hand, a filter that needs every column only for
    its message templates reads the others on demand (`strings(name)` reads a column's
    strings alone)."""
    if columns is not None or stats is None or _scoped(expr):
        return read(columns)
    named = vector.columns_needed_with_templates(expr, ())
    if named is None:
        return read(None)
    # A client's renderings (`@r`) are read only where a template has a formatted token.
    base = read(named - {"@r"})
    return PartialBatch(base, stats, read, strings)
