"""Event decoders: CLEF, Seq's JSON and OTLP in, `seqfast.storage.batch.Batch` out, plus the
level vocabulary they share."""
