"""The HTTP API: Seq's ingestion endpoints on a lean h11 path, everything else on Starlette."""
