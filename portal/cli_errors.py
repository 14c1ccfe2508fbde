"""The one place the ``daaas`` command turns a typed error into a one-line message.

Commands raise the project's typed errors and never catch them to print: :class:`ErrorGroup`
wraps every subcommand, and :func:`message_for` says what went wrong, with what, and what to
do, on one line (click prints it to stderr as ``Error: ...`` and exits with 1). An exception
not listed here is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy.exc import DBAPIError

from daaas.catalogue.files import UnreadableFile
from daaas.contextualisation import ContextualisationError
from daaas.cvmfs.registry import RegistryError
from daaas.portal.access.proxy import ProxyError
from daaas.portal.config import ConfigError
from daaas.portal.errors import PortalError
from daaas.vm_images.build import BuildError
from daaas.vm_images.recipe import RecipeError
from daaas.vm_images.upload import ImageError

# Errors whose str() already says what went wrong, with what and what to do.
WORDED = (ConfigError, RegistryError, UnreadableFile, RecipeError, BuildError, ImageError,
          ProxyError)
HANDLED = (PortalError, ContextualisationError, DBAPIError, OSError, *WORDED)


def one_line(text: str) -> str:
    """Return ``text`` with its lines joined by "; " (a message is one line on a terminal)."""
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def message_for(exc: BaseException) -> str:
    """Return the one-line message for one of the :data:`HANDLED` errors."""
    if isinstance(exc, PortalError | ContextualisationError):
        detail = "" if exc.log_message == exc.user_message else f" ({exc.log_message})"
        return one_line(exc.user_message + detail)
    if isinstance(exc, DBAPIError):
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        return (f"Cannot use the database: {reason}. Check database_url (`daaas config show`), "
                "and run `daaas db upgrade` for a new or older database.")
    if isinstance(exc, RegistryError):
        return one_line(f"{exc} (the registry is the file named by --cvmfs-registry or the "
                        "cvmfs_registry setting; empty: the shipped one)")
    if isinstance(exc, OSError) and exc.filename is not None:
        return (f"{exc.strerror or exc}: {exc.filename}. Check that the path exists and that "
                "this account may use it (settings naming paths: `daaas config show`).")
    return one_line(str(exc))


class ErrorGroup(click.Group):
    """A click group whose subcommands' typed errors end as one line on stderr, exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; raises click.ClickException with :func:`message_for`'s line."""
        try:
            return super().invoke(ctx)
        except click.UsageError:
            raise  # click's own usage help, several lines by design
        except click.ClickException as exc:
            if "\n" not in exc.message:
                raise
            raise click.ClickException(one_line(exc.message)) from None
        except HANDLED as exc:
            raise click.ClickException(message_for(exc)) from None
