"""``facedit keys create|list|revoke``: API keys, stored hashed in the job database."""

from __future__ import annotations

import typer
from rich.table import Table

from facedit.cli.loaders import job_store
from facedit.cli.options import typer_app
from facedit.console import cell, console, fail, say
from shared.core.config import get_settings
from shared.core.webhooks import owner_secret

app = typer_app("Manage API keys (stored hashed in the job database).")


@app.command("create")
def keys_create(
    owner: str = typer.Argument(..., help="who the key belongs to; scopes all their jobs"),
    name: str = typer.Option(None, "--name", help="a label, e.g. the client's name"),
) -> None:
    """Create an API key. The key is printed once; only its hash is stored."""
    from shared.jobs import ApiKeys

    with job_store() as store:
        try:
            record, key = ApiKeys(store).create(owner, name)
        except ValueError as exc:
            fail(str(exc), 2)
    say(f"key id:  {record.id}\nowner:   {record.owner}\napi key: {key}")
    secret = get_settings().webhook_secret
    if secret:
        say(f"webhook signing secret: {owner_secret(secret, owner)}")
    say("store the key now: it cannot be shown again", "yellow")


@app.command("list")
def keys_list(
    owner: str = typer.Option(None, "--owner", help="only this owner's keys"),
    show_revoked: bool = typer.Option(True, "--revoked/--no-revoked"),
) -> None:
    """List API keys (ids and prefixes, never the keys)."""
    from shared.jobs import ApiKeys

    with job_store() as store:
        records = ApiKeys(store).list(owner, include_revoked=show_revoked)
    table = Table(title="API keys")
    for column in ("id", "owner", "name", "created", "last used", "revoked"):
        table.add_column(column, no_wrap=column == "id", min_width=12 if column == "id" else None)
    for r in records:
        table.add_row(cell(r.id), cell(r.owner), cell(r.name),
                      cell(f"{r.created_at:%Y-%m-%d %H:%M}"),
                      cell(f"{r.last_used_at:%Y-%m-%d %H:%M}" if r.last_used_at else ""),
                      cell(f"{r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else ""))
    console.print(table)


@app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="the key id (or the key itself)")) -> None:
    """Revoke an API key; requests with it get 401 from then on."""
    from shared.jobs import ApiKeys

    with job_store() as store:
        revoked = ApiKeys(store).revoke(key_id)
    if not revoked:
        fail(f"no live key {key_id!r}", 1)
    say(f"revoked {key_id}")
