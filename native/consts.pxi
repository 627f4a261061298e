# Value tags of a property column, one byte per row (see native/FORMAT.md, "Value tags").
# Append-only: the numbers are stored in segment files and commit-log records.
DEF TAG_ABSENT = 0   # the event has no such key
DEF TAG_NULL = 1     # JSON null
DEF TAG_FALSE = 2
DEF TAG_TRUE = 3
DEF TAG_INT = 4      # int64 in the nums stream
DEF TAG_FLOAT = 5    # IEEE-754 binary64 bits in the nums stream
DEF TAG_STRING = 6   # UTF-8 text in the strings stream
DEF TAG_JSON = 7     # an object or array, minified JSON text in the strings stream
DEF TAG_BIGINT = 8   # an integer outside int64, decimal text in the strings stream

# Deepest nesting of arrays and objects accepted inside one event (the event object is depth 1).
DEF MAX_DEPTH = 64
