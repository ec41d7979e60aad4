"""`scripts/demo` runs its whole story and says that nothing was lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_loses_nothing_when_a_worker_is_killed() -> None:
    environment = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    done = subprocess.run(
        [sys.executable, "scripts/demo.py"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "killed the worker (kill -9" in done.stdout
    assert "Results: 67 of 67, all correct: True" in done.stdout
    assert "unknown task 'no-such-task'" in done.stdout
    assert "Demo succeeded: nothing was lost." in done.stdout
