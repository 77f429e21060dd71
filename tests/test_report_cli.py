"""`sitewatch report`: bad input gives one line and exit 2; a stored site renders end to end."""

from __future__ import annotations

import pytest

from sitewatch.cli.main import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_unsupported_extension_is_one_line(tmp_path, capsys) -> None:
    code, _, err = _run(["report", "hmeimim", "-o", str(tmp_path / "r.docx")], capsys)
    assert code == 2
    assert err.strip() == f"error: {tmp_path / 'r.docx'}: unsupported report format '.docx'; use .html, .pdf or .json"
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_one_line(tmp_path, capsys) -> None:
    code, _, err = _run(["report", "hmeimim", "-o", str(tmp_path / "nope" / "r.pdf")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "does not exist" in err and "Traceback" not in err
