"""The wheel and the sdist carry every Lua script, and the package finds them."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from .test_scripts import scripts_the_package_calls

ROOT = Path(__file__).resolve().parent.parent
#: The scripts the package calls (test_scripts checks that this is every one shipped).
SCRIPTS = sorted(f"lua/{name}.lua" for name in scripts_the_package_calls())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-d", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


def test_the_wheel_carries_every_script(built: Path) -> None:
    (wheel,) = built.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [s for s in SCRIPTS if f"taskiq_redis_lua/{s}" not in names]
    assert not missing, f"the wheel lacks {missing}"
    assert "taskiq_redis_lua/py.typed" in names


def test_the_sdist_carries_every_script(built: Path) -> None:
    (sdist,) = built.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert not [s for s in SCRIPTS if s not in names]


def test_the_installed_package_reads_its_scripts_from_inside_itself(
    built: Path, tmp_path: Path
) -> None:
    (wheel,) = built.glob("*.whl")
    zipfile.ZipFile(wheel).extractall(tmp_path)
    probe = (
        "from taskiq_redis_lua import scripts;"
        "print(scripts.scripts_directory());"
        "print(len(scripts.catalog()))"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path[:0] = [{str(tmp_path)!r}]; {probe}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    directory, count = done.stdout.split()
    assert Path(directory) == tmp_path / "taskiq_redis_lua" / "lua"
    assert int(count) == len(SCRIPTS)
