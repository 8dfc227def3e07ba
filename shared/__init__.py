"""Code shared by the ingest and recover functions: pure decisions and thin adapters."""
