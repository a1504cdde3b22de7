"""Studies over many runs: sweeps (local processes or Ray) into a content-addressed Parquet store
that DuckDB queries, sizing by a sequential procedure, and replanning order shares by an LP."""
