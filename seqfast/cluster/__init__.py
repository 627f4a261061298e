"""The cluster runtime: the leader lease, membership, and the node state machine.

`machine.py` (which role this node plays, as a pure state machine) and `timing.py` (the lease
durations and the rules between them) are pure: they import no trio, no SQL and no `time`, and
take the current time as an argument.  The rest of the package connects them to the database,
the clock and the application.
"""
