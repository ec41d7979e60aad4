"""`scripts/bench.py --quick` runs every measure and reports each one.

Only that the bench works is checked here; no figure is asserted (timings belong to
bench runs, not to tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("ours-list", "theirs-list", "ceiling")


@pytest.mark.timeout(400)
def test_a_quick_bench_fills_every_row_of_its_variants(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            "scripts/bench.py",
            "--quick",
            "--variants",
            ",".join(VARIANTS),
            "--json",
            str(report),
        ],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "REDIS_URL"},
        capture_output=True,
        text=True,
        timeout=380,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tasks/s e2e, with results" in done.stdout
    document = json.loads(report.read_text())
    assert all(run["finished"] for run in document["runs"])
    assert [note for note in document["notes"] if "ours" in note] == []
    empty = [
        (key, variant)
        for key, row in document["measures"].items()
        for variant in row["variants"]
        if variant in VARIANTS and row["values"][variant] is None
    ]
    assert empty == []
    # What a run leaves behind: a queue's own few keys, no result without a TTL.
    left = document["measures"]["no_ttl"]["values"]["ours-list"]["median"]
    assert left < 10
