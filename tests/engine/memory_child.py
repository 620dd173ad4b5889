"""Runs a snippet in a child Python whose address space may grow only a fixed budget."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PRELUDE = """
import resource
def _limit(budget):
    # After the imports: the child may map at most `budget` bytes more than it has now.
    with open("/proc/self/status") as fh:
        size = next(int(l.split()[1]) * 1024 for l in fh if l.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (size + budget, resource.RLIM_INFINITY))
"""


def run_limited(
    imports: str, body: str, budget: int, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `imports`, then cap the address space at its size + budget bytes, then run `body`;
    a child still running after `timeout` seconds is killed and fails the test."""
    code = _PRELUDE + textwrap.dedent(imports) + f"\n_limit({budget})\n" + textwrap.dedent(body)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout
    )
