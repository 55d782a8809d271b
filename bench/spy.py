"""py-spy for the benchmarks: record a process, then say where its busy samples went.

One recorder and one summary for every benchmark; each benchmark names its own areas
(``buckets``: a label and the substrings of a stack that put a sample in it). ``pip install
py-spy`` first; the benchmarks only call this when asked (``--spy``/``--profile``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

RATE = 250  # samples per second


def start(output: str | Path, *, pid: int | None = None, seconds: float | None = None) -> subprocess.Popen[bytes]:
    """Record ``pid`` (this process by default) as raw folded stacks into ``output``, for
    ``seconds`` or until ``stop``; returns once py-spy has had a moment to attach."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    argv = [spy, "record", "--pid", str(pid or os.getpid()), "--rate", str(RATE), "--format", "raw"]
    if seconds is not None:
        argv += ["--duration", str(max(1, int(seconds)))]
    process = subprocess.Popen(
        [*argv, "--output", str(output), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(1.0)  # attached before the work to record starts
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    """End a recording (py-spy writes its file on SIGINT) and wait for the file."""
    process.send_signal(signal.SIGINT)
    process.wait(60)


def summarize(output: str | Path, buckets: Mapping[str, Sequence[str]], *, title: str, top: int = 15) -> None:
    """Print each bucket's share of the busy samples (inclusive) and the hottest leaf frames."""
    path = Path(output)
    if not path.exists():
        print(f"no profile written to {path}")
        return
    total = 0
    shares = dict.fromkeys(buckets, 0)
    leaves: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        for name, needles in buckets.items():
            if any(needle in stack for needle in needles):
                shares[name] += samples
        leaves[stack.split(";")[-1]] += samples
    print(f"\nprofile of {title} ({total} samples at {RATE} Hz, idle excluded by py-spy):")
    for name, samples in shares.items():
        print(f"  {100 * samples / max(total, 1):5.1f}%  {name}")
    print("  hottest leaves:")
    for frame, samples in leaves.most_common(top):
        print(f"  {100 * samples / max(total, 1):5.1f}%  {frame}")
