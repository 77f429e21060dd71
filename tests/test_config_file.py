"""The optional config file ($XDG_CONFIG_HOME/sitewatch/config.toml): read, overridden by the environment, errors in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sitewatch.api.settings import ApiSettings
from sitewatch.compare.settings import CompareSettings
from sitewatch.settings import ConfigError, Settings, config_path, read_config


def _write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    path = tmp_path / "cfg" / "sitewatch" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    assert config_path() == path
    return path


def test_config_file_sets_store_model_thresholds_and_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, monkeypatch, f"""
store_url = "sqlite:///{tmp_path}/team.db"
score_threshold = 0.35
[api]
imagery_roots = ["{tmp_path}/imagery"]
[compare]
min_overlap = 0.5
""")
    s = Settings()
    assert s.resolved_store_url() == f"sqlite:///{tmp_path}/team.db" and s.score_threshold == 0.35
    assert ApiSettings().imagery_roots == [tmp_path / "imagery"]
    assert CompareSettings().min_overlap == 0.5
    monkeypatch.setenv("SITEWATCH_SCORE_THRESHOLD", "0.6")  # the environment wins over the file
    assert Settings().score_threshold == 0.6
    assert Settings(score_threshold=0.1).score_threshold == 0.1  # and keyword arguments over both


def test_cli_uses_the_configured_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, monkeypatch, f'store_url = "sqlite:///{tmp_path}/team.db"\n')
    r = subprocess.run([sys.executable, "-m", "sitewatch.cli.main", "passes"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "team.db").is_file()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("score_threshold = [\n", r"config\.toml: not valid TOML: "),
        ("score_threshold = 3\n", r"config\.toml: score_threshold: Input should be less than or equal to 1"),
        ("api = 3\n", r"config\.toml: \[api\] must be a table"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str) -> None:
    _write(tmp_path, monkeypatch, text)
    r = subprocess.run([sys.executable, "-m", "sitewatch.cli.main", "passes"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert __import__("re").search(expected, r.stderr), r.stderr


def test_unknown_key_warns_and_missing_named_file_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    _write(tmp_path, monkeypatch, "stor_url = 'x'\n")
    assert read_config() == {"stor_url": "x"}
    assert "unknown setting 'stor_url'" in caplog.text
    monkeypatch.setenv("SITEWATCH_CONFIG", str(tmp_path / "none.toml"))
    with pytest.raises(ConfigError, match=r"none\.toml: config file not found \(named by SITEWATCH_CONFIG\)"):
        Settings()


def test_config_with_api_table_works_without_the_serve_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The [api] table must not make every command import the web server's packages."""
    _write(tmp_path, monkeypatch, f'store_url = "sqlite:///{tmp_path}/team.db"\n[api]\ntoken = "x"\n')
    code = "import sys; sys.modules['fastapi'] = None; from sitewatch.cli.main import main; main(['passes'])"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "team.db").is_file()
