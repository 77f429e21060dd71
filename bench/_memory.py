"""Peak resident memory of this process, for the benchmarks."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """Peak resident set size of this process since it started (or exec'd), in MB.

    Reads ``VmHWM`` from ``/proc/self/status``: the high-water mark of this process's own address
    space. ``getrusage().ru_maxrss`` is not used where ``/proc`` exists because Linux carries the
    parent's peak over a fork + exec, so a benchmark child started by a parent that had used
    1.5 GB would report at least 1.5 GB whatever it did itself.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    # macOS reports bytes, Linux kibibytes
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if rss > 1 << 32 else rss / 1024.0
