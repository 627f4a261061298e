"""A block read with only some of its columns, able to read the others when asked.

Free-text search and `@Message` render message templates, whose tokens name properties that
are known only once a block's templates are read, and most of which a search never needs to
look at (see `vector_text`).  A filter over such a block is evaluated on a `PartialBatch`: the
columns the filter names itself are read, the others on demand.  It carries the block's
column statistics, so that a missing column can be told apart from one not read yet, and can
read a column's strings alone, so that a search can rule a column out without its tags.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping

from seqfast.storage.batch import Batch, Column, Int64Array
from seqfast.storage.segment import ColumnStats

# A column's strings (offsets, data), or None when it has none.
Strings = tuple[Int64Array, bytes] | None


class PartialBatch(Batch):
    """A block's rows with some of its columns: those of `base` (its ts and seq too, read
    when first asked for).  `stats` are the block's column statistics (a column missing
    from them is absent from every row); `read_columns(names)` reads the block with those
    columns, `read_strings(name)` a column's strings alone (a dictionary's distinct values).
    """

    def __init__(
        self,
        base: Batch,
        stats: Mapping[str, ColumnStats],
        read_columns: Callable[[Collection[str]], Batch],
        read_strings: Callable[[str], Strings] | None,
    ) -> None:  # the dataclass fields are set here; ts, seq and columns are properties
        self.n = base.n
        self._base = base
        self._columns: dict[str, Column] | None = None
        self.stats = stats
        self.read_columns = read_columns
        self.read_strings = read_strings

    @property
    def columns(self) -> dict[str, Column]:
        found = self._columns
        if found is None:
            found = self._columns = dict(self._base.columns)
        return found

    @columns.setter
    def columns(self, value: dict[str, Column]) -> None:
        self._columns = value

    @property
    def ts(self) -> Int64Array:
        return self._base.ts

    @ts.setter
    def ts(self, value: Int64Array) -> None:
        self._base.ts = value

    @property
    def seq(self) -> Int64Array:
        return self._base.seq

    @seq.setter
    def seq(self, value: Int64Array) -> None:
        self._base.seq = value


def require(batch: Batch, names: Iterable[str]) -> None:
    """Makes `batch` hold every column of `names` its block has (a whole batch already does)."""
    if not isinstance(batch, PartialBatch):
        return
    missing = {name for name in names if name not in batch.columns and name in batch.stats}
    if missing:
        batch.columns.update(batch.read_columns(missing).columns)


def stats_of(batch: Batch) -> Mapping[str, ColumnStats] | None:
    """The block's column statistics when `batch` may lack some of its columns, else None
    (the batch's columns are all the block has)."""
    return batch.stats if isinstance(batch, PartialBatch) else None


def strings_of(batch: Batch, name: str) -> Strings:
    """Column `name`'s strings, each distinct one possibly only once (offsets, data), read
    alone when the column is not read yet; None when it has none."""
    column = batch.columns.get(name)
    if column is not None:
        if column.dictionary is not None:
            return column.dictionary[1], column.dictionary[2]
        return column.str_offsets, column.str_data
    if isinstance(batch, PartialBatch) and batch.read_strings is not None:
        return batch.read_strings(name)
    return None
