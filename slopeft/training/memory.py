"""Peak memory of a block of work: process RSS (Linux high-water mark) and GPU memory."""

from __future__ import annotations

import resource
from pathlib import Path

import torch


def _read_hwm_kb() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakMemory:
    """Context manager measuring peak RSS (MiB) and peak GPU memory (MiB) inside the block.

    On Linux, writing 5 to /proc/self/clear_refs resets the RSS high-water mark, so the peak is
    the block's own; where that is not possible the process-lifetime peak (ru_maxrss) is reported.
    """

    def __init__(self) -> None:
        self.peak_rss_mb: float | None = None
        self.peak_gpu_mb: float | None = None

    def __enter__(self) -> PeakMemory:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc: object) -> None:
        kb = _read_hwm_kb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.peak_rss_mb = kb / 1024
        if torch.cuda.is_available():
            self.peak_gpu_mb = torch.cuda.max_memory_allocated() / 2**20
