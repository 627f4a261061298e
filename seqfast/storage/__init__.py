"""Storage: the commit log, the in-memory head, immutable columnar segments and their merging."""
