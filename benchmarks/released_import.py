"""Import one file of a released repository unchanged, with the heavy packages it names at module
level but does not use on the path a parity check runs replaced by empty stand-ins.

Used by ``parity_surroundocc.py`` and ``parity_openoccupancy.py``: the released files import
mmcv / mmdet / mmdet3d (registries, base classes), compiled extensions and plotting helpers at
their top; the functions compared (label loaders, metric code) use none of them. Each stand-in
is a module whose every attribute is a class that takes any arguments and, as a decorator
factory (``@PIPELINES.register_module()``), returns what it decorates. A real package of the same
name, when installed, is used instead unless ``force`` lists it.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path


class _Anything:
    """A stand-in class: any attribute, call or subclassing works; as a decorator factory it
    returns the decorated object unchanged."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, *args: object, **kwargs: object) -> object:
        if len(args) == 1 and not kwargs and (isinstance(args[0], type) or callable(args[0])):
            return args[0]
        return self

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything()

    def register_module(self, *args: object, **kwargs: object) -> object:
        return lambda obj: obj


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (_Anything,), {})() if name.isupper() else type(name, (_Anything,), {})


def stub_modules(names: list[str], force: tuple[str, ...] = ()) -> list[str]:
    """Put a stand-in in ``sys.modules`` for each dotted name (and its parents) that cannot be
    imported (or is in ``force``); returns the names stubbed."""
    stubbed = []
    for name in names:
        if name not in force:
            try:
                importlib.import_module(name)
                continue
            except Exception:
                pass
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            sub = ".".join(parts[:i])
            if sub in sys.modules and not isinstance(sys.modules[sub], _StubModule) and sub not in force:
                continue
            if sub not in sys.modules or not isinstance(sys.modules[sub], _StubModule):
                mod = _StubModule(sub)
                mod.__path__ = []  # a package, so that submodules resolve
                sys.modules[sub] = mod
                if i > 1:
                    setattr(sys.modules[".".join(parts[: i - 1])], parts[i - 1], mod)
        stubbed.append(name)
    return stubbed


def load_file(path: Path, module_name: str) -> types.ModuleType:
    """Execute the released file ``path`` unchanged as the module ``module_name`` (a dotted name
    lets its relative imports resolve against modules already in ``sys.modules``)."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path}: cannot be loaded")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = mod
    spec.loader.exec_module(mod)
    return mod


def git_commit(repo: Path) -> str:
    """The checked-out commit of ``repo`` (``git rev-parse HEAD``), or ``unknown``."""
    import subprocess

    try:
        return subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
