"""AUTO-PRUNE's platform package, which also stands in for Python's standard ``platform``.

Run from the repository root, this package shadows the standard library module of the
same name, and torch, Ray, MLflow, Hydra and pandas all call ``platform.system()`` and
friends at import time. So the package first executes the standard ``platform.py``
under the name ``platform`` (which keeps ``uname_result`` picklable) and copies every
public name into its own namespace. This file must never import project code: it runs
before anything else is importable. No submodule may be named after a standard
``platform`` function (``version``, ``system``, ``node``, ...): importing it would
overwrite that function.
"""

import importlib.util as _importlib_util
import os as _os
import sysconfig as _sysconfig


def _load_standard_platform():
    path = _os.path.join(_sysconfig.get_path("stdlib"), "platform.py")
    spec = _importlib_util.spec_from_file_location("platform", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the standard platform module from {path}")
    module = _importlib_util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_standard = _load_standard_platform()
for _name in dir(_standard):
    if not _name.startswith("__"):
        globals()[_name] = getattr(_standard, _name)

STANDARD_PLATFORM_FUNCTIONS = frozenset(
    name for name in dir(_standard) if not name.startswith("_") and callable(getattr(_standard, name))
)
del _name
