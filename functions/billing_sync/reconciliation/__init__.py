"""Reconciliation: prove billing and the ERP agree per document and per balance, for an entity and period.

`extracts` holds the row types and the partitioned Parquet writer, `sql/` the one SQL source, `engine`
runs it with DuckDB, `athena` transpiles it for Athena, `report` writes JSON, CSV and HTML.
"""
