"""Option groups shared by several commands."""

from __future__ import annotations

import click


def rewrite_options(func):
    """What a restore or `rehost` may change in pydio.json for a new host."""
    for decorator in reversed([
        click.option("--cells-dir", type=click.Path(file_okay=False), help="(New) Cells working directory."),
        click.option("--map", "maps", multiple=True, metavar="OLD=NEW", help="Move paths under OLD to NEW."),
        click.option("--database-url", help="(New) database, URL form: mysql://user:pass@host:port/db."),
        click.option("--external-url", help="New public URL of the site."),
        click.option("--bind", help="New bind address HOST:PORT."),
        click.option("--peer-address", help="New PeerAddress for datasources."),
        click.option("--clear-peer-address", is_flag=True, help="Remove PeerAddress from datasources."),
    ]):
        func = decorator(func)
    return func
