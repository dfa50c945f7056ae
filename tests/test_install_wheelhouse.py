"""The offline install path: scripts/install.sh --wheelhouse DIR installs from wheels only, or says what is missing.

A real wheelhouse holds gigabytes (torch), so the test venv sees the development venv's packages
through links, all except setuptools, which it must install from the test's wheelhouse: a wheel
repacked from the installed setuptools. pip runs with no index, so nothing can come from the network.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import distribution
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def repack_wheel(name: str, folder: Path) -> Path:
    """A wheel of the installed distribution `name`, rebuilt from the files its RECORD lists."""
    dist = distribution(name)
    root = Path(dist.locate_file(""))
    info = next(p for p in (dist.files or []) if p.parent.name.endswith(".dist-info")).parent
    wheel = folder / f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for row in csv.reader((root / info / "RECORD").read_text().splitlines()):
            path = row[0]
            skip = path.startswith("..") or "__pycache__" in path or path.endswith((".pyc", "INSTALLER", "REQUESTED",
                                                                                   "direct_url.json"))
            if not skip and (root / path).is_file():
                archive.write(root / path, path)
    return wheel


def linked_venv(path: Path, hide: tuple[str, ...]) -> Path:
    """A venv whose site-packages links to this interpreter's packages, except the names in `hide`."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    target = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip())
    source = Path(sysconfig.get_paths()["purelib"])
    for entry in source.iterdir():
        lowered = entry.name.lower()
        own = lowered.startswith(("auto_prune", "__editable__", "__pycache__"))  # the install writes these itself
        if not own and not any(lowered.startswith(prefix) for prefix in hide):
            (target / entry.name).symlink_to(entry)
    return python


def install(venv: Path, wheelhouse: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env.update(VENV=str(venv), PIP_INDEX_URL="http://127.0.0.1:9/unreachable", PIP_CONFIG_FILE=os.devnull)
    return subprocess.run(["bash", str(REPO / "scripts" / "install.sh"), "--wheelhouse", str(wheelhouse)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_install_from_a_local_wheelhouse_takes_what_it_lacks_from_the_wheels(tmp_path):
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    repack_wheel("setuptools", wheelhouse)
    python = linked_venv(tmp_path / "venv", hide=("setuptools", "_distutils_hack", "distutils-precedence"))
    assert subprocess.run([str(python), "-c", "import setuptools"], capture_output=True).returncode != 0
    done = install(tmp_path / "venv", wheelhouse)
    assert done.returncode == 0, done.stderr
    located = subprocess.run([str(python), "-c", "import setuptools, torch, ray; print(setuptools.__file__)"],
                             check=True, capture_output=True, text=True).stdout.strip()
    assert not Path(located).parent.is_symlink()  # installed from the wheelhouse, not linked
    assert Path(located).is_relative_to(tmp_path / "venv")


def test_a_wheelhouse_that_lacks_a_wheel_fails_naming_the_wheelhouse(tmp_path):
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    repack_wheel("setuptools", wheelhouse)
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "bare")], check=True)  # no torch anywhere
    done = install(tmp_path / "bare", wheelhouse)
    assert done.returncode == 1
    assert "torch==2.14.1" in done.stderr and f"the wheelhouse {wheelhouse} lacks a wheel" in done.stderr


@pytest.mark.parametrize("make", [False, True])
def test_an_empty_or_missing_wheelhouse_is_refused_before_anything_is_installed(tmp_path, make):
    wheelhouse = tmp_path / "wheels"
    if make:
        wheelhouse.mkdir()
    done = install(tmp_path / "venv", wheelhouse)
    assert done.returncode == 2 and "holds no wheels" in done.stderr
    assert not (tmp_path / "venv").exists()
