"""``sitewatch evaluate DATASET_DIR``: AP50, precision, recall and count error on labelled imagery."""

from __future__ import annotations

import json

import click

from sitewatch.cli.detect import build_detector, open_image
from sitewatch.cli.options import json_option, model_option

#: Score threshold the detector runs at during evaluation, so AP sees the whole ranking.
_AP_FLOOR = 0.05


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _mape(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _short(group: str | None) -> str:
    """A site group id (an image name, often a UUID) cut to its first 8 characters for the table."""
    return "-" if group is None else group[:8]


def _group_rows(table, result) -> None:  # noqa: ANN001 - rich Table, Evaluation
    """Rows per site group of the datasets evaluated by group, then per category the mean over
    groups and the worst group for AP50 and for count error (ids cut to 8 characters)."""
    spread = result.group_spread()
    for dataset, groups in result.by_group.items():
        table.add_section()
        table.add_row(f"{dataset} by site group", "", "", "", "", "", "", "", style="bold")
        for group, cats in groups.items():
            for c in cats.values():
                if c.objects:
                    table.add_row(
                        f"group {_short(group)}",
                        c.category,
                        str(c.images),
                        str(c.objects),
                        _pct(c.ap50),
                        _pct(c.precision),
                        _pct(c.recall),
                        _mape(c.count_mape),
                    )
        for cat, s in spread.get(dataset, {}).items():
            if s["ap50_mean"] is None:
                continue
            table.add_row(
                f"mean of {s['groups']} groups",
                cat,
                "",
                "",
                _pct(s["ap50_mean"]),
                "",
                "",
                _mape(s["count_mape_mean"]),
                style="bold",
            )
            table.add_row(
                f"worst AP50: {_short(s['ap50_worst_group'])}",
                cat,
                "",
                "",
                _pct(s["ap50_worst"]),
                "",
                "",
                "",
                style="bold",
            )
            table.add_row(
                f"worst count: {_short(s['count_mape_worst_group'])}",
                cat,
                "",
                "",
                "",
                "",
                "",
                _mape(s["count_mape_worst"]),
                style="bold",
            )


@click.command("evaluate")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False))
@json_option
@click.option(
    "--split",
    type=click.Choice(["val", "all"]),
    default="val",
    show_default=True,
    help="Held-out images only, or all.",
)
@click.option(
    "--score",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Operating threshold for every category (default: the model's, per category).",
)
@click.option(
    "--iou", type=click.FloatRange(0.05, 0.95), default=0.5, show_default=True, help="IoU for a match."
)
@model_option
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate at most this many images.")
@click.option(
    "--by-dataset",
    is_flag=True,
    help=(
        "Also one row per dataset and category, and per site group of airbus-pleiades with the mean and "
        "worst group."
    ),
)
def command(
    dataset_dir: str,
    as_json: bool,
    split: str,
    score: float | None,
    iou: float,
    model: str | None,
    limit: int | None,
    by_dataset: bool,
) -> None:
    """Evaluate the detector on DATASET_DIR (a DOTA labelTxt folder, or a folder of them).

    Metrics are defined in docs/detect.md.
    """
    from itertools import islice
    from pathlib import Path

    from sitewatch.cli.console import err_console, out_console, progress
    from sitewatch.detect.evaluate import evaluate, iter_labelled, split_filter

    _, note = split_filter(split)
    if note:
        err_console.print(f"warning: {note}")
    items = list(islice(iter_labelled(Path(dataset_dir), split), limit))
    if not items:
        raise click.UsageError(f"{dataset_dir}: no labelled images in split {split!r}")
    detector = build_detector(model, ())
    # The shipped per-category thresholds (as detect uses them) unless --score sets one for all.
    thresholds = detector.score_thresholds
    threshold = detector.info.score_threshold if score is None else score
    if score is not None:
        thresholds = dict.fromkeys(thresholds, score)
    detector.score_threshold = min(_AP_FLOOR, *thresholds.values())
    with progress(disable=not err_console.is_terminal) as bar:
        task = bar.add_task("evaluating", total=len(items))
        result = evaluate(
            detector,
            items,
            open_scene=lambda im: open_image(
                str(im.image_path), im.gsd_m, force=True
            ),  # label GSDs, not typed ones
            score_threshold=threshold,
            score_thresholds=thresholds,
            iou_threshold=iou,
            progress=lambda _im: bar.advance(task),
        )
    result.split = split
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=1))
        return
    from rich.table import Table

    if len(set(thresholds.values())) == 1:
        at = f"score ≥ {threshold:.2f}"
    else:
        at = "score ≥ " + ", ".join(f"{c} {t:.3g}" for c, t in thresholds.items())
    table = Table(title=f"{result.model} on {dataset_dir} ({split}: {result.images} images, {at}, IoU {iou})")
    cols = ("category", "images", "objects", "AP50 %", "P %", "R %", "MAPE %")
    if by_dataset:
        table.add_column("dataset")
    for col in cols:
        # Figures keep their width (up to "100.0"); the dataset column wraps instead.
        table.add_column(
            col,
            justify="left" if col == "category" else "right",
            no_wrap=True,
            min_width=None if col == "category" else 5,
        )
    rows = [("all", {**result.categories, **result.pooled})] + (
        list(result.by_dataset.items()) if by_dataset else []
    )
    for name, cats in rows:
        for c in cats.values():
            mape = "-" if c.count_mape is None else f"{c.count_mape:.1f}"
            cells = (
                c.category,
                str(c.images),
                str(c.objects),
                _pct(c.ap50),
                _pct(c.precision),
                _pct(c.recall),
                mape,
            )
            table.add_row(*((name,) if by_dataset else ()), *cells)
        if name == "all":
            table.add_row(
                *(("",) if by_dataset else ()),
                "mean",
                "",
                "",
                _pct(result.map50),
                "",
                "",
                "",
                style="bold",
                end_section=True,
            )
    if by_dataset:
        _group_rows(table, result)
    out_console.print(table)
    if result.skipped:
        err_console.print(
            f"warning: {len(result.skipped)} unreadable images skipped: {', '.join(result.skipped[:5])}"
        )
