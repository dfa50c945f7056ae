"""The project's `platform` package must behave as the standard module for every library."""

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import platform

REPO_ROOT = Path(__file__).resolve().parents[1]
STDLIB_FUNCTIONS = ("version", "system", "machine", "node", "release", "processor", "uname", "architecture")


def run_from_root(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def run_clean(code: str) -> str:
    """An interpreter started outside the repo, where `platform` is the standard module."""
    result = subprocess.run([sys.executable, "-I", "-c", code], cwd="/", capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_package_shadows_the_standard_module_from_the_root():
    assert Path(platform.__file__).resolve() == REPO_ROOT / "platform" / "__init__.py"


def test_standard_api_matches_a_clean_interpreter():
    probe = ("import json, platform; print(json.dumps([platform.system(), platform.machine(), "
             "platform.python_implementation(), platform.python_version(), list(platform.uname()), "
             "platform.release(), platform.node()]))")
    assert json.loads(run_from_root(probe)) == json.loads(run_clean(probe))


def test_every_public_name_of_the_standard_module_is_present():
    names = json.loads(run_clean("import json, platform; print(json.dumps(sorted(platform.__all__ "
                                 "if hasattr(platform, '__all__') else [n for n in dir(platform) "
                                 "if not n.startswith('_')])))"))
    missing = [name for name in names if not hasattr(platform, name)]
    assert missing == []


def test_uname_result_pickles_round_trip():
    import pickle

    uname = platform.uname()
    assert pickle.loads(pickle.dumps(uname)) == uname


def test_no_submodule_is_named_after_a_standard_platform_function():
    submodules = {info.name for info in pkgutil.iter_modules([str(REPO_ROOT / "platform")])}
    assert submodules.isdisjoint(STDLIB_FUNCTIONS), submodules & set(STDLIB_FUNCTIONS)
    assert submodules.isdisjoint(platform.STANDARD_PLATFORM_FUNCTIONS)


@pytest.mark.slow  # imports every library in a subprocess
def test_torch_ray_mlflow_hydra_pandas_import_and_work_from_the_root():
    out = run_from_root(
        "import platform, torch, ray, mlflow, hydra, pandas, torchvision\n"
        "assert torch.ones(2).sum().item() == 2\n"
        "print(platform.system(), pandas.__version__ != '', ray.__version__ != '')"
    )
    assert out == f"{run_clean('import platform; print(platform.system())')} True True"
