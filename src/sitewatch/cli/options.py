"""Shared click options."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


class AliasedOption(click.Option):
    """An option whose old spellings (``hidden_names``) still work but are not shown in ``--help``."""

    def __init__(self, *args: Any, hidden_names: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hidden_names = set(hidden_names)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        saved = self.opts
        self.opts = [o for o in self.opts if o not in self.hidden_names]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = saved


def output_option(help: str, *, old: tuple[str, ...] = (), **kwargs: Any) -> Callable[[Any], Any]:
    """``-o/--output`` (the one spelling for what a command writes); ``old`` spellings stay as hidden
    aliases."""
    return click.option(
        "-o", "--output", *old, "output", cls=AliasedOption, hidden_names=old, help=help, **kwargs
    )


def _store_url(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Refuse an in-memory SQLite store: what a command stores there is gone when it ends."""
    if value is None:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        return value  # the store reports a malformed URL itself
    if url.get_backend_name() == "sqlite" and (
        not url.database or url.database == ":memory:" or "mode=memory" in str(url)
    ):
        raise click.BadParameter(
            f"{value!r} is an in-memory store: nothing would be kept after this command; use sqlite:///PATH"
        )
    return value


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
store_option = click.option(
    "--store",
    "store_url",
    envvar="SITEWATCH_STORE_URL",
    show_envvar=True,
    default=None,
    callback=_store_url,
    help=(
        "Store URL (default: embedded SQLite under $SITEWATCH_HOME or ~/.sitewatch; postgresql://... for "
        "PostGIS)."
    ),
)
gsd_option = click.option(
    "--gsd",
    type=click.FloatRange(min=0.001, min_open=False),
    default=None,
    help="Ground sample distance, metres per pixel.",
)
force_option = click.option("--force", is_flag=True, help="Accept a --gsd outside 0.05-30 m per pixel.")
overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Replace an existing output file (refused otherwise)."
)
model_option = click.option(
    "--model",
    envvar="SITEWATCH_MODEL",
    show_envvar=True,
    default=None,
    help="Detector model name or .onnx path (default: the bundled model).",
)


def _bound(which: str) -> Callable[[click.Context, click.Parameter, str | None], Any]:
    def parse(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
        from sitewatch.store.span import Bound

        if value is None:
            return None
        try:
            return Bound.parse(value, which)
        except ValueError as e:
            raise click.BadParameter(str(e).split(": ", 1)[-1]) from None

    return parse


def span_options(what: str = "to use (default: all)") -> Callable[[Any], Any]:
    """``--from`` / ``--to``: the inclusive span of passes a command works on (:mod:`sitewatch.store.span`).

    The command receives one ``span`` argument, a :class:`sitewatch.store.span.PassSpan`, instead of the two
    options.
    """

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        import functools

        @functools.wraps(f)
        def wrapper(*args: Any, span_from: Any = None, span_to: Any = None, **kwargs: Any) -> Any:
            from sitewatch.store.span import PassSpan

            return f(*args, span=PassSpan(span_from, span_to), **kwargs)

        wrapper = click.option("--to", "span_to", metavar="PASS|DATE", default=None, callback=_bound("to"),
                               help="End of the span: a pass id or UTC date, inclusive "
                                    "(a date covers its whole day).")(wrapper)  # fmt: skip
        return click.option("--from", "span_from", metavar="PASS|DATE", default=None, callback=_bound("from"),
                            help=f"Start of the span of passes {what}: a pass id or UTC date, inclusive "
                                 "(e.g. 2024-12-10).")(wrapper)  # fmt: skip

    return decorate
