"""Safe output files: checked targets, atomic replacement, spreadsheet-safe text.

Every command that writes a file (exports, reports, change maps, detection lists) goes through
:func:`atomic_output`: the content is written to a temporary file in the target's folder and
renamed over the target only when complete, so an interrupted or failed write never leaves a
half-written file. A target that exists and is not a regular file (a folder, a device such as
``/dev/full``, a named pipe, a socket) is refused, and an existing file is replaced only when the
caller passes ``overwrite=True`` (the CLI's ``--overwrite``).

Text that reaches spreadsheets (CSV cells) or map viewers (KML names) is neutralised with
:func:`neutralise_cell`, following the OWASP guidance on CSV injection.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sitewatch.errors import ReportError

#: First characters that make a spreadsheet treat a cell as a formula (OWASP "CSV Injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_output(path: str | Path, *, overwrite: bool = False, what: str = "file") -> Path:
    """Check that ``path`` can be written as a new (or, with ``overwrite``, replaced) regular file.

    A symbolic link is followed: the file it points to is the one replaced.

    Args:
        path: the file to write.
        overwrite: allow replacing an existing regular file.
        what: what is written, for messages ("export", "report", "change map").

    Returns:
        The path to write (the link target when ``path`` is a symbolic link).

    Raises:
        ReportError: the folder is missing or not writable, the target exists and is not a regular
            file, or it exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    try:
        st = path.stat()
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise ReportError(f"{path}: cannot write {what} ({e.strerror or e})") from None
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            raise ReportError(f"{path}: exists and is {_kind(st.st_mode)}; {what} not written")
        if not overwrite:
            raise ReportError(f"{path}: exists; use --overwrite to replace it")
    parent = path.parent
    if not parent.is_dir():
        raise ReportError(f"{path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ReportError(f"{path}: folder {parent} is not writable")
    return path


@contextlib.contextmanager
def atomic_output(path: str | Path, *, overwrite: bool = False, what: str = "file") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    The temporary file keeps ``path``'s suffix (some writers choose a format by it) and starts
    absent, so writers that refuse an existing file work too. It is removed when the block raises.
    Permissions are those of a new file under the current umask.

    Raises:
        ReportError: see :func:`check_output`; or the rename fails.
    """
    target = check_output(path, overwrite=overwrite, what=what)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent
        )
        os.close(fd)
        os.unlink(tmp_name)
    except OSError as e:
        raise ReportError(f"{target}: cannot write {what} ({e.strerror or e})") from None
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.is_file():
            raise ReportError(f"{target}: {what} writer produced no file")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        # re-check just before the rename: the target may have appeared meanwhile
        check_output(target, overwrite=overwrite, what=what)
        os.replace(tmp, target)
    except OSError as e:
        raise ReportError(f"{target}: cannot write {what} ({e.strerror or e})") from None
    finally:
        _remove(tmp)


def _remove(tmp: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)
    for side in (Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
        side.unlink(missing_ok=True)


def neutralise_cell(text: str | None) -> str | None:
    """``text`` made safe for a spreadsheet cell or a map label.

    A value starting with ``= + - @``, a tab or a carriage return is prefixed with a single quote so
    spreadsheets show it as text instead of evaluating it (OWASP "CSV Injection"). Numbers are
    not text and are left alone by callers.
    """
    if text and text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text
