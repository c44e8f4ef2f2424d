"""The same reconciliation SQL for Athena: transpiled from DuckDB to Trino with sqlglot.

`sql/*.sql` is the one source. Each extract table becomes its Glue table (`"<database>"."<prefix><table>"`)
over the S3 layout the extract writer produces, `$period` / `$entity` become quoted literals, and DuckDB-only
functions become Trino's (`LIST_CONTAINS` -> `CONTAINS`, `LIST` -> `ARRAY_AGG`, `LAST_DAY` ->
`LAST_DAY_OF_MONTH`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from billing_sync.reconciliation.extracts import glue_columns
from billing_sync.reconciliation.statements import render_sql


@dataclass(frozen=True, slots=True)
class S3Layout:
    """Where the extracts live in S3 and how their Glue tables are named.

    `s3://<bucket>/<prefix>/<table>/legal_entity=<E>/period=<YYYY-MM>/*.parquet`, Glue table `<table_prefix><table>`.
    """

    bucket: str
    prefix: str = "reconciliation/extracts"
    table_prefix: str = ""

    def root(self) -> str:
        """The root to give the extract writer (with DuckDB's httpfs loaded) for this layout."""
        prefix = self.prefix.strip("/")
        return f"s3://{self.bucket}/{prefix}" if prefix else f"s3://{self.bucket}"

    def location(self, table: str) -> str:
        return f"{self.root()}/{table}/"

    def table_name(self, table: str) -> str:
        return f"{self.table_prefix}{table}"


def athena_sql(name: str, database: str, layout: S3Layout, *, period: str, entity: str | None = None) -> str:
    """`sql/<name>.sql` as Trino text for Athena, reading `layout`'s Glue tables in `database`.

    Raises SqlRenderError for an unknown SQL name, table or parameter and ExtractError for a malformed period.
    """
    return render_sql(
        name,
        period=period,
        entity=entity,
        dialect="trino",
        table=lambda table: exp.table_(layout.table_name(table), db=database, quoted=True),
    )


def glue_table_ddl(table: str, database: str, layout: S3Layout) -> str:
    """Athena DDL for one extract table over `layout` (partitions added by `MSCK REPAIR TABLE` or projection).

    Raises KeyError for an unknown table. The CDK stack can define the same Glue tables from `glue_columns`.
    """
    data, partitions = glue_columns(table)
    columns = ",\n  ".join(f"`{column}` {kind}" for column, kind in data)
    keys = ", ".join(f"`{column}` {kind}" for column, kind in partitions)
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{layout.table_name(table)}` (\n  {columns}\n)\n"
        f"PARTITIONED BY ({keys})\nSTORED AS PARQUET\nLOCATION '{layout.location(table)}'"
    )
