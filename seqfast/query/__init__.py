"""Seq's query language: search expressions (filters) and `select` queries, parsed to a tree.

`parse_filter` and `parse_query` turn text into the frozen dataclasses of `ast`;
`to_source` turns a tree back into text.  Evaluation is elsewhere: this package only says
what a text means, or why it means nothing (`QuerySyntaxError`, with the position, what was
expected there and, where one is obvious, a suggestion).  The grammar, its precedence table and
the rules for reading a filter as free text are documented in `parse.py`.
"""

from seqfast.query.ast import DEFAULT_LIMIT, Filter, Query, to_source
from seqfast.query.errors import QuerySyntaxError
from seqfast.query.execute import QueryResult, QueryTimeout, SearchResult
from seqfast.query.parse import MAX_DEPTH, is_query, parse_filter, parse_query

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_DEPTH",
    "Filter",
    "Query",
    "QueryResult",
    "QuerySyntaxError",
    "QueryTimeout",
    "SearchResult",
    "is_query",
    "parse_filter",
    "parse_query",
    "to_source",
]
