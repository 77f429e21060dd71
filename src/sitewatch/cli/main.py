"""The ``sitewatch`` command group.

Each module in this package that defines a module-level ``command`` (a ``click.Command``)
becomes a sub-command. Logging is configured here only; library code just logs.
Exit status: 0 success; 2 a user error (:class:`~sitewatch.errors.SitewatchError`, a bad option
or a bad ``SITEWATCH_*`` setting: one line on stderr); 1 an internal failure (one line naming the
exception; the traceback with ``-vv``); 130 interrupted.
"""

from __future__ import annotations

import errno
import importlib
import logging
import pkgutil
import sys
from collections.abc import Mapping
from typing import Any

import click
import pydantic

from sitewatch import __version__
from sitewatch.errors import SitewatchError

_SKIP = {"main", "options", "console"}


class _Group(click.Group):
    """Discovers commands lazily from the modules of :mod:`sitewatch.cli`."""

    def _modules(self) -> list[str]:
        import sitewatch.cli as pkg

        return sorted(
            m.name
            for m in pkgutil.iter_modules(pkg.__path__)
            if m.name not in _SKIP and not m.name.startswith("_")
        )

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        for mod in self._modules():
            names.add(mod.replace("_", "-").removesuffix("-cmd"))
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            return cmd
        base = cmd_name.replace("-", "_")
        for mod_name in (base, base + "_cmd"):
            if mod_name in self._modules():
                module = importlib.import_module(f"sitewatch.cli.{mod_name}")
                return getattr(module, "command", None)
        return None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sitewatch")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
def cli(verbose: int, quiet: bool) -> None:
    """sitewatch: detect, identify, compare and assess activity at watched sites in overhead imagery."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    from rich.logging import RichHandler

    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[RichHandler(console=_stderr_console(), show_path=False, show_time=False)],
        force=True,
    )
    logging.captureWarnings(True)


def _stderr_console():  # noqa: ANN202 - rich type import kept lazy
    from sitewatch.cli.console import err_console

    return err_console


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the group, turning user errors into one line and exit code 2."""
    try:
        cli.main(args=argv, prog_name="sitewatch", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.UsageError as e:  # one line, like every other user error
        hint = f" (see: {e.ctx.command_path} --help)" if e.ctx is not None else ""
        click.echo(f"error: {' '.join(e.format_message().split())}{hint}", err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except SitewatchError as e:
        click.echo(f"error: {one_line(str(e))}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except RecursionError:
        click.echo("error: the input is nested too deeply to read", err=True)
        sys.exit(2)
    except OSError as e:
        if not e.filename and e.errno in ENVIRONMENT_ERRNOS:  # e.g. a full disk under a temporary file
            click.echo(f"error: {e.strerror or e} (while writing a temporary or output file)", err=True)
            sys.exit(2)
        if not e.filename:
            raise_internal(e)
        from sitewatch.imagery.reader import short_path

        click.echo(f"error: {one_line(short_path(str(e.filename)))}: {e.strerror or e}", err=True)
        sys.exit(2)
    except pydantic.ValidationError as e:  # only the settings are validated from user input here
        from sitewatch.settings import setting_origin

        first: Mapping[str, Any] = e.errors()[0] if e.errors() else {}
        where = setting_origin(e.title, "_".join(str(p) for p in first.get("loc", ())))
        click.echo(f"error: {where}: {first.get('msg', str(e).splitlines()[0])}", err=True)
        sys.exit(2)
    except Exception as e:  # noqa: BLE001 - the edge: an internal failure is one line and exit 1
        raise_internal(e)


def one_line(text: str) -> str:
    """``text`` with control characters (newlines, tabs, escape sequences from file names) shown escaped."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


#: Failures of the machine rather than of sitewatch, reported as one ``error:`` line (exit 2) even
#: when the OSError names no file: a full disk or quota, a read-only file system.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def raise_internal(e: BaseException) -> None:
    """An internal failure: one line and exit 1 (the traceback with -vv)."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        import traceback

        traceback.print_exception(e)
    else:
        click.echo(
            f"internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} (rerun with "
            "-vv for the traceback)",
            err=True,
        )
    sys.exit(1)


if __name__ == "__main__":
    main()
