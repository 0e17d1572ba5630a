"""``emporium inventory migrate|reconcile|stock|set-stock`` (mounted by emporium.cli)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import msgspec
import typer

from emporium.cli.context import settings_from
from kernel.settings import Settings

inventory_app = typer.Typer(help="Inventory: schema migrations, reconcile Redis from MySQL, stock levels.")


def _settings(ctx: typer.Context) -> Settings:
    return settings_from(ctx)


def _run(coro: Any) -> Any:
    """Run a command's coroutine; refusals become one clear line on stderr and exit code 2."""
    from inventory.domain import InventoryError
    from inventory.factory import InventoryConfigError

    try:
        return asyncio.run(coro)
    except (InventoryError, InventoryConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@inventory_app.command()
def migrate(ctx: typer.Context) -> None:
    """Apply pending schema migrations to the inventory database (safe to repeat)."""
    from kernel.database import MysqlTarget, parse_database_url

    settings = _settings(ctx)
    target = parse_database_url(settings.database_url)
    if isinstance(target, MysqlTarget):
        from inventory.cluster import migrate_mysql

        applied = asyncio.run(migrate_mysql(target))
    else:
        import sqlite3

        from inventory.sqlite import migrate_sqlite

        target.path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(str(target.path), isolation_level=None) as conn:
            applied = migrate_sqlite(conn)
    typer.echo(json.dumps({"applied": applied, "database": target.__class__.__name__}))


@inventory_app.command()
def reconcile(ctx: typer.Context) -> None:
    """Rebuild the Redis counters from MySQL (new epoch) and expire due holds; prints a report."""
    from inventory.factory import build_engine

    async def run() -> dict[str, object]:
        engine = build_engine(_settings(ctx), sweep_interval=None)
        await engine.start()
        try:
            report = await engine.reconcile()
            expired = await engine.expire_due()
        finally:
            await engine.close()
        return {**msgspec.to_builtins(report), "expired": report.expired + expired}

    typer.echo(json.dumps(_run(run())))


@inventory_app.command()
def stock(ctx: typer.Context, sku: str) -> None:
    """Print the acknowledged stock of a SKU."""
    from inventory.api import stock_json
    from inventory.factory import build_engine

    async def run() -> dict[str, object]:
        engine = build_engine(_settings(ctx), sweep_interval=None)
        await engine.start()
        try:
            return stock_json(await engine.get_stock(sku))
        finally:
            await engine.close()

    typer.echo(json.dumps(_run(run())))


@inventory_app.command("set-stock")
def set_stock(
    ctx: typer.Context,
    sku: str,
    on_hand: int,
    limit: Annotated[int | None, typer.Option(help="Per-customer limit (0 removes it).")] = None,
) -> None:
    """Set a SKU's on-hand quantity (e.g. to start a flash sale), like PUT /v1/stock/{sku}."""
    from inventory.api import stock_json
    from inventory.factory import build_engine

    async def run() -> dict[str, object]:
        engine = build_engine(_settings(ctx), sweep_interval=None)
        await engine.start()
        try:
            return stock_json(await engine.set_on_hand(sku, on_hand, per_customer_limit=limit))
        finally:
            await engine.close()

    typer.echo(json.dumps(_run(run())))


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root ``emporium`` command."""
    app.add_typer(inventory_app, name="inventory")
