"""``sitewatch claims``: ingest text reports, extract claims, list stored claims."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import click
from rich.table import Table

from sitewatch.cli.console import err_console, out_console, terminal_text
from sitewatch.cli.options import json_option, store_option
from sitewatch.errors import ClaimsError

#: Earliest publication date accepted (reports before the satellite era are not this tool's evidence).
EARLIEST_PUBLISHED = datetime(1960, 1, 1, tzinfo=UTC)


def _published(value: str | None) -> datetime | None:
    """The ``--published`` value as UTC, between :data:`EARLIEST_PUBLISHED` and tomorrow.

    Raises:
        ClaimsError: unreadable or out of range (one line).
    """
    if value is None:
        return None
    import dateparser

    dt = dateparser.parse(
        value, languages=["en"], settings={"RETURN_AS_TIMEZONE_AWARE": True, "TIMEZONE": "UTC"}
    )
    if dt is None:
        raise ClaimsError(f"--published: cannot read {value!r} as a date (try 2024-12-18)")
    dt = dt.astimezone(UTC)
    latest = datetime.now(UTC) + timedelta(days=1)
    if not EARLIEST_PUBLISHED <= dt <= latest:
        raise ClaimsError(
            f"--published: {dt.date()} is outside {EARLIEST_PUBLISHED.date()} .. {latest.date()} "
            "(tomorrow); give the report's publication date"
        )
    return dt


def _count(m: dict) -> str:
    c = m.get("count")
    if not c:
        return ""
    hi = "" if c["max"] is None else c["max"]
    return f"{c['text']} [{c['min']}..{hi}]" if c["min"] != c["max"] else f"{c['text']} [{c['min']}]"


def _table(title: str, claims: list[dict]) -> Table:
    table = Table(title=title, show_lines=True)
    for col in ("id", "equipment", "count", "state", "place", "date", "attribution", "sentence"):
        table.add_column(col, overflow="fold")
    for c in claims:
        eq = [m for m in c["equipment"]]
        speaker = c.get("speaker")
        who = "; ".join(c["attributions"])
        if speaker and c.get("speaker_role"):
            who += f" ({c['speaker_role']})"
        row = (
            str(c["id"]),
            "\n".join(
                (m.get("name") or m["text"])
                + ("" if m.get("resolved") or m.get("generic") else " (unresolved)")
                for m in eq
            ),
            "\n".join(_count(m) for m in eq),
            ", ".join(c["states"]) + (f" → {c['signal']}" if c.get("signal") else ""),
            ", ".join(c["places"]) + (" (inferred)" if c.get("place_inherited") else ""),
            ", ".join(f"{d.get('qualifier') or ''} {d['date'] or d['text']}".strip() for d in c["dates"]),
            who,
            c["text"],
        )
        # report text is untrusted: no escape sequences or markup reach the terminal
        table.add_row(*(terminal_text(cell) for cell in row))
    return table


@click.group()
def command() -> None:
    """Claims from English text reports (news, statements), checked later against imagery."""


def _extract(location: str, source: str, published: str | None, reliability: str | None, report=None):  # noqa: ANN001, ANN202
    from sitewatch.assess.claims import check_english, extract_claims
    from sitewatch.assess.documents import read_report

    if report is None:
        report = read_report(location)
        check_english(report.text, location)  # name the file or URL, not the source, in the message
    pub = _published(published)
    claims = extract_claims(
        report.text, source=source, published=pub, reliability=reliability, url=report.url
    )
    return report, pub, claims


_source_opts = [
    click.argument("location", metavar="FILE|URL"),
    click.option("--source", required=True, help="Name of the source (outlet, author, channel)."),
    click.option("--published", default=None,
                 help="Publication date/time (e.g. 2024-12-18); relative dates resolve against it."),
    click.option("--reliability", type=click.Choice(list("ABCDEF"), case_sensitive=False), default=None,
                 help="Admiralty source reliability A (completely reliable) .. E (unreliable), "
                      "F (cannot be judged)."),
]  # fmt: skip


def _with_source_opts(f):  # noqa: ANN001, ANN202
    for opt in reversed(_source_opts):
        f = opt(f)
    return f


@command.command("add")
@_with_source_opts
@click.option("--title", default=None, help="Document title (default: the HTML title).")
@json_option
@store_option
def add(location: str, source: str, published: str | None, reliability: str | None, title: str | None,
        as_json: bool, store_url: str | None) -> None:  # fmt: skip
    """Ingest a report from FILE or URL, extract its claims and store them.

    Example: sitewatch claims add report.txt --source Reuters --published 2024-12-18 --reliability B
    """
    from sitewatch.assess.claims import check_english
    from sitewatch.assess.documents import read_report
    from sitewatch.store import open_store

    report = read_report(location)
    check_english(report.text, location)
    with open_store(store_url) as store:
        known = store.find_document(source, report.text)
        if known is not None:  # before extracting: re-ingesting is a no-op
            err_console.print(
                f"{terminal_text(location)}: already stored as document {known} from "
                f"{terminal_text(source)}; nothing added",
                soft_wrap=True,
            )
            if as_json:
                click.echo(json.dumps({"document_id": known, "added": False, "claims": []}, indent=1))
            return
        _, pub, claims = _extract(location, source, published, reliability, report)
        doc_id, added = store.add_document_once(source, report.text, pub, report.url, title or report.title,
                                                [c.to_dict() for c in claims])  # fmt: skip
        if not added:  # stored by a concurrent ingest in the meantime
            err_console.print(
                f"{terminal_text(location)}: already stored as document {doc_id} from "
                f"{terminal_text(source)}; nothing added",
                soft_wrap=True,
            )
            return
        stored = [c for c in store.list_claims() if c.get("document_id") == doc_id]
    if as_json:
        click.echo(
            json.dumps({"document_id": doc_id, "added": True, "claims": stored}, indent=1, default=str)
        )
        return
    out_console.print(_table(f"document {doc_id} ({terminal_text(source)}): {len(stored)} claims", stored))


@command.command("extract")
@_with_source_opts
@json_option
def extract(
    location: str, source: str, published: str | None, reliability: str | None, as_json: bool
) -> None:
    """Show the claims in FILE or URL without storing them.

    Example: sitewatch claims extract report.txt --source Reuters --published 2024-12-18
    """
    _, _, claims = _extract(location, source, published, reliability)
    dicts = [c.to_dict() for c in claims]
    if as_json:
        click.echo(json.dumps(dicts, indent=1, default=str))
        return
    out_console.print(_table(f"{terminal_text(source)}: {len(dicts)} claims", dicts))


@command.command("list")
@click.argument("site", required=False)
@json_option
@store_option
def list_(site: str | None, as_json: bool, store_url: str | None) -> None:
    """List stored claims (about SITE, or all).

    Example: sitewatch claims list hmeimim
    """
    from sitewatch.store import open_store

    with open_store(store_url) as store:
        claims = store.list_claims(site)
    if as_json:
        click.echo(json.dumps(claims, indent=1, default=str))
        return
    out_console.print(
        _table(f"claims{' about ' + terminal_text(site) if site else ''}: {len(claims)}", claims)
    )
