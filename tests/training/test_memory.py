"""Peak-memory measurement and the heap-fragmentation limit used by CPU training."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
import torch

from slopeft.training.memory import PeakMemory, limit_heap_fragmentation

# Batches of varying length, as length-grouped training produces: tensors of many sizes between
# 0.4 and 13 MB allocated and freed step after step, with a little state kept from every step.
# Prints the RSS the process keeps afterwards (126-336 MB with glibc's default, 5-6 MB with a
# fixed 1 MiB threshold, over repeated runs on the development machine).
_VARYING_BATCHES = """
import random, sys, torch
from pathlib import Path
from slopeft.training.memory import limit_heap_fragmentation

def rss_mb():
    line = next(l for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('VmRSS'))
    return int(line.split()[1]) // 1024

torch.set_num_threads(1)
limit_heap_fragmentation(int(sys.argv[1]))
torch.empty(6 << 20).fill_(1.0)  # a 24 MB block, freed: glibc's adaptive threshold rises to 24 MB
rng = random.Random(0)
base = rss_mb()
kept = []
for step in range(40):
    length = rng.choice([16, 32, 48, 64, 96, 128])
    live = [torch.empty(16, length, 384 * rng.choice([1, 4])).fill_(1.0) for _ in range(30)]
    kept.append(torch.empty(16 << 10).fill_(1.0))  # state that outlives the step (64 KB) pins the heap
    del live
print(rss_mb() - base)
"""


def _retained_mb(threshold_kib: int) -> int:
    done = subprocess.run([sys.executable, "-c", _VARYING_BATCHES, str(threshold_kib)], capture_output=True,
                          text=True, check=True)
    return int(done.stdout.strip().splitlines()[-1])


def test_peak_memory_sees_an_allocation_inside_the_block() -> None:
    with PeakMemory() as memory:
        block = torch.ones(64, 1024, 1024)  # 256 MiB, touched
        del block
    assert memory.peak_rss_mb is not None and memory.peak_rss_mb > 256


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the mmap threshold is a glibc setting")
def test_fixed_mmap_threshold_returns_freed_activations_to_the_system() -> None:
    adaptive = _retained_mb(0)  # glibc's default: the threshold rises, freed blocks stay on the heap
    fixed = _retained_mb(1024)
    assert adaptive > 60, f"glibc kept only {adaptive} MB; the scenario no longer fragments the heap"
    assert fixed < adaptive / 4, (fixed, adaptive)


def test_zero_threshold_leaves_malloc_alone() -> None:
    assert limit_heap_fragmentation(0) is False
