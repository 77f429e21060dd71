"""CLI conventions: -o/--output for what a command writes, environment variables in --help,
exit status 2 for user errors and 1 for internal failures (one line, no traceback)."""

from __future__ import annotations

import click
import pytest

from sitewatch.cli.main import cli, main

#: Commands that write a file or folder named by the user.
WRITERS = ("compare", "demo", "detect", "export", "report", "train")


def _command(name: str) -> click.Command:
    cmd = cli.get_command(click.Context(cli), name)
    assert cmd is not None, name
    return cmd


@pytest.mark.parametrize("name", WRITERS)
def test_writers_take_o_output(name: str) -> None:
    outputs = [p for p in _command(name).params if isinstance(p, click.Option) and {"-o", "--output"} <= set(p.opts)]
    assert outputs, f"{name}: no -o/--output"
    others = [o for p in _command(name).params if isinstance(p, click.Option) for o in p.opts if o in ("--out", "--map")]
    help_text = _command(name).get_help(click.Context(_command(name), info_name=name))
    for old in others:  # old spellings still work but are not advertised
        assert f"{old} " not in help_text and f"{old}," not in help_text


def test_environment_variables_shown_in_help(capsys: pytest.CaptureFixture) -> None:
    for name, var in (("export", "SITEWATCH_STORE_URL"), ("scan", "SITEWATCH_MODEL"), ("detect", "SITEWATCH_SCORE_THRESHOLD")):
        main([name, "--help"])  # click returns after printing help
        assert f"env var: {var}" in " ".join(capsys.readouterr().out.split()), name


def test_exit_status_user_error_usage_error_and_internal_failure(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit) as e:
        main(["export", "nowhere-xyz", "-o", "x.txt"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().startswith("error: x.txt: cannot tell the export format")
    with pytest.raises(SystemExit) as e:
        main(["export", "--no-such-option"])
    assert e.value.code == 2 and "No such option" in capsys.readouterr().err

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003
        raise RuntimeError("invariant violated\nsecond line")

    monkeypatch.setattr("sitewatch.report.exports.format_for", broken)
    with pytest.raises(SystemExit) as e:
        main(["export", "nowhere-xyz", "-o", "x.gpkg"])
    err = capsys.readouterr().err
    assert e.value.code == 1
    assert err.strip() == "internal error: RuntimeError: invariant violated (rerun with -vv for the traceback)"
