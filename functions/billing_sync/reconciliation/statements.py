"""The one SQL source (`sql/*.sql`, DuckDB dialect) and its rendering for an engine, through sqlglot.

Rendering replaces the `$period` / `$entity` parameters with literals in the syntax tree (sqlglot quotes
them, so no text is spliced into the query), optionally renames the extract tables (Glue tables on Athena)
and writes the dialect asked for: `duckdb` for the local engine, `trino` for Athena.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.resources import files

import sqlglot
from sqlglot import exp

from billing_sync.reconciliation.extracts import TABLES, check_period

SQL_NAMES = ("reconcile", "controls")


class SqlRenderError(ValueError):
    """Raised for an unknown SQL name, or SQL that reads a table or parameter the extract contract lacks."""


def load_sql(name: str) -> str:
    """The text of `sql/<name>.sql`; raises SqlRenderError for an unknown name."""
    if name not in SQL_NAMES:
        raise SqlRenderError(f"unknown reconciliation SQL {name!r}; expected one of {SQL_NAMES}")
    return files("billing_sync.reconciliation").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


@cache
def _parsed(name: str) -> exp.Expr:
    return sqlglot.parse_one(load_sql(name), read="duckdb")


def render_sql(
    name: str,
    *,
    period: str,
    entity: str | None = None,
    dialect: str = "duckdb",
    table: Callable[[str], exp.Table] | None = None,
) -> str:
    """`sql/<name>.sql` with its parameters bound as literals, in `dialect`, tables renamed by `table`.

    Raises ExtractError for a malformed period and SqlRenderError for an unknown name, table or parameter.
    """
    check_period(period)
    values: dict[str, exp.Expr] = {
        "period": exp.Literal.string(period),
        "entity": exp.Literal.string(entity) if entity is not None else exp.Null(),
    }
    tree = _parsed(name).copy()
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}

    def rewrite(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Placeholder):
            try:
                return values[str(node.name)].copy()
            except KeyError:
                raise SqlRenderError(f"unknown parameter ${node.name} in {name}.sql") from None
        if isinstance(node, exp.Table) and node.name and not node.args.get("db") and node.name not in ctes:
            if node.name not in TABLES:
                raise SqlRenderError(f"{name}.sql reads {node.name!r}, which is not an extract table")
            if table is not None:
                renamed = table(node.name)
                renamed.set("alias", exp.TableAlias(this=exp.to_identifier(node.alias or node.name)))
                return renamed
        return node

    return tree.transform(rewrite).sql(dialect=dialect, pretty=True, comments=False)
