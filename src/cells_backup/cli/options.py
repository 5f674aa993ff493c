"""Option groups shared by several commands."""

from __future__ import annotations

import click


def _check_site(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse a malformed --external-url or --bind before anything is opened (UsageError: exit 2)."""
    if value is None:
        return None
    from ..cells.rewrite import check_bind, check_external_url

    return check_bind(value) if param.name == "bind" else check_external_url(value)


def rewrite_options(func):
    """What a restore or `rehost` may change in pydio.json for a new host."""
    for decorator in reversed([
        click.option("--cells-dir", type=click.Path(file_okay=False), help="(New) Cells working directory."),
        click.option("--map", "maps", multiple=True, metavar="OLD=NEW", help="Move paths under OLD to NEW."),
        click.option("--database-url", help="(New) database, URL form: mysql://user:pass@host:port/db."),
        click.option("--external-url", callback=_check_site, metavar="URL",
                     help="New public URL of the site (scheme and host, e.g. https://cells.example.com)."),
        click.option("--bind", callback=_check_site, metavar="HOST:PORT", help="New bind address HOST:PORT."),
        click.option("--peer-address", help="New PeerAddress for datasources."),
        click.option("--clear-peer-address", is_flag=True, help="Remove PeerAddress from datasources."),
    ]):
        func = decorator(func)
    return func
