"""``daaas storage exports``: the NFS exports of the ``local`` backend's user folders, for cloud
VMs (:mod:`daaas.portal.storage.exports`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click
from sqlalchemy import select

from daaas.portal.auth.models import User
from daaas.portal.config import load_settings
from daaas.portal.db import make_engine, make_session_factory
from daaas.portal.pools.service import POOL_ACCOUNT
from daaas.portal.storage.errors import StorageError
from daaas.portal.storage.exports import ganesha_exports, kernel_exports, user_exports


@click.group("storage")
def storage_group() -> None:
    """User storage: this host's NFS exports of users' folders for cloud VMs."""


@storage_group.command("exports")
@click.option("--clients", multiple=True, required=True,
              help="Address or network the cloud VMs come from (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["ganesha", "exports"]), default="ganesha",
              show_default=True, help="NFS-Ganesha EXPORT blocks or /etc/exports lines.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file (only when changed) and print 'changed' or "
              "'unchanged'; default: print the exports.")
@click.option("--create-folders", is_flag=True,
              help="Make the folder of every active user first (else only existing folders).")
@click.option("--insecure-ports", is_flag=True,
              help="Accept clients from any source port, not only root's (below 1024): only "
              "for QEMU's user network, whose forwards connect from any port.")
def exports(clients: tuple[str, ...], fmt: str, output: Path | None,
            create_folders: bool, insecure_ports: bool) -> None:
    """Write one read-write NFS export per user folder under var_dir/storage, as
    local_storage_export names it, every client id squashed to the folder's owner and open
    only to --clients and, unless --insecure-ports, only from a privileged port (so only root
    on a VM, never its user, can talk NFS to it). Run it again when users are added, then
    make the server re-read it (Ganesha: SIGHUP; kernel: exportfs -ra). Exits 1 when
    local_storage_export is unset."""
    settings = load_settings()
    engine = make_engine(settings.effective_database_url)
    try:
        with make_session_factory(engine)() as db:
            users = list(db.scalars(select(User).where(User.is_active.is_(True),
                                                       User.username != POOL_ACCOUNT)))
            found = user_exports(settings, users, create=create_folders)
        text = (ganesha_exports if fmt == "ganesha" else kernel_exports)(
            found, clients, insecure_ports=insecure_ports)
    except StorageError as exc:  # the administrator's own command: the log's wording
        raise click.ClickException(exc.log_message) from None
    finally:
        engine.dispose()
    if output is None:
        click.echo(text, nl=False)
        return
    if output.is_file() and output.read_text(encoding="utf-8") == text:
        click.echo("unchanged")
        return
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=output.parent,
                                     prefix=f".{output.name}.", delete=False) as temporary:
        temporary.write(text)
    os.chmod(temporary.name, 0o644)
    os.replace(temporary.name, output)
    click.echo("changed")
