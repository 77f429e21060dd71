"""``sitewatch watch``: watch sites for new imagery and alert on what changes (once, or as a daemon)."""

from __future__ import annotations

import json
import re
import signal
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from sitewatch.cli.console import out_console
from sitewatch.cli.options import json_option, store_option

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``30s``, ``15m``, ``2h`` or ``1d``.

    Raises:
        click.BadParameter: anything else, or zero.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not m or float(m.group(1)) <= 0:
        raise click.BadParameter(f"{text!r}: expected a duration such as 30s, 15m, 2h or 1d")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def _line(res) -> str:  # noqa: ANN001 - a CycleResult
    parts = [f"{len(res.passes)} new pass(es)", f"{len(res.alerts)} alert(s)", f"{res.delivered} delivered"]
    if res.skipped:
        parts.append(f"{len(res.skipped)} skipped")
    if res.failed:
        parts.append(f"{len(res.failed)} item(s) failed")
    if res.source_errors:
        parts.append(f"{len(res.source_errors)} source(s) unreachable")
    if res.delivery_failures:
        parts.append(f"{len(res.delivery_failures)} delivery failure(s)")
    return "watch cycle: " + ", ".join(parts) + (" (stopped)" if res.stopped else "")


def _when(iso: str | None) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM:SS`` (UTC), or ``-``."""
    if not iso:
        return "-"
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _print_status(st: dict) -> None:
    t = Table(title="Watched sources")
    for col in ("site", "source", "last poll (UTC)", "last ok (UTC)", "items", "error"):
        t.add_column(col, overflow="fold")
    for s in st["sources"]:
        items = ", ".join(f"{n} {k}" for k, n in sorted(s["items"].items())) or "-"
        err = f"[red]{escape(s['error'])}[/] ({s['failures']}x)" if s["error"] else ""
        t.add_row(s["site"], escape(s["source"]), _when(s["last_poll"]), _when(s["last_ok"]), items, err)
    out_console.print(t)
    if st["failures"]:
        f = Table(title="Failed items")
        for col in ("site", "item", "status", "attempts", "next attempt", "error"):
            f.add_column(col, overflow="fold")
        for r in st["failures"]:
            f.add_row(
                r["site"],
                escape(r["item"]),
                r["status"],
                str(r["attempts"]),
                _when(r["next_attempt"]),
                escape(r["error"] or ""),
            )
        out_console.print(f)
    d = st["deliveries"]
    out_console.print(
        f"alerts: {st['alerts']}; deliveries: {d['sent']} sent, {d['pending']} pending, {d['failed']} failed"
    )
    for r in st["delivery_failures"]:
        out_console.print(
            f"  [red]alert {r['alert']} on {escape(r['channel'])}[/] ({r['status']}, {r['attempts']} "
            f"attempt(s)): {escape(r['error'])}"
        )


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              envvar="SITEWATCH_WATCH_CONFIG", default=None,
              help="Watch configuration YAML (default: $SITEWATCH_HOME/watch.yaml). "
                   "See docs/watch.md.")  # fmt: skip
@click.option(
    "--once", is_flag=True, help="Run one cycle and exit (for cron); exit status 1 when something failed."
)
@click.option(
    "--every",
    default=None,
    metavar="DURATION",
    help="Run a cycle every DURATION (e.g. 15m) until SIGTERM/SIGINT.",
)
@click.option(
    "--status", "show_status", is_flag=True, help="Show sources, failed items and alert deliveries, and exit."
)
@json_option
@store_option
def command(
    config_path: Path | None,
    once: bool,
    every: str | None,
    show_status: bool,
    as_json: bool,
    store_url: str | None,
) -> None:
    """Watch the configured sites for new imagery; scan, compare, assess and alert on what changes.

    Examples: sitewatch watch --once;  sitewatch watch --every 15m;  sitewatch watch --status
    """
    from sitewatch.settings import Settings
    from sitewatch.store import open_store
    from sitewatch.watch import Watcher, load_config, single_watcher, status

    if sum((once, every is not None, show_status)) != 1:
        raise click.UsageError("give exactly one of --once, --every DURATION or --status")
    if show_status:
        with open_store(store_url) as store:
            st = status(store)
        if as_json:
            click.echo(json.dumps(st, indent=1, default=str))
        else:
            _print_status(st)
        return
    period = parse_duration(every) if every is not None else None
    config = load_config(config_path or Settings().home / "watch.yaml")
    with single_watcher(Settings().home / "watch.lock"), open_store(store_url) as store:
        watcher = Watcher(config, store)
        if period is None:
            res = watcher.run_once()
            if as_json:
                click.echo(json.dumps(res.__dict__, default=str))
            else:
                out_console.print(_line(res))
            if res.failed or res.source_errors or res.delivery_failures:
                raise SystemExit(1)
            return

        def _stop(signum: int, _frame: object) -> None:
            watcher.stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        out_console.print(
            f"watching {len(config.sites)} site(s) every {every}; SIGTERM or Ctrl-C stops after the "
            "current item"
        )
        watcher.run_forever(
            period,
            on_cycle=lambda r: out_console.print(
                json.dumps(r.__dict__, default=str) if as_json else _line(r)
            ),
        )
        out_console.print("watch stopped")
