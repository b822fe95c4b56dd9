"""Whether the installed torch and torchvision are a pair that loads together, read without importing either.

A CPU torch beside a CUDA torchvision (what two installs from two indexes leave behind: PyTorch's CPU index for
torch, PyPI for torchvision) cannot load torchvision's compiled operators: ``import torchvision`` then fails with
``operator torchvision::nms does not exist``, deep inside whatever first imported it. The ``occkit`` command checks
the pair at start-up (:func:`pair_problem`, two small files read) and its error boundary turns that RuntimeError, if
it comes anyway, into the same one line (:func:`broken_pair_message`), naming both versions and the fix.

What is checked, only where it is known: the build variant of the two (the local version label: ``+cpu`` against
``+cu124``, or two CUDA major versions), the torch version torchvision's own metadata requires, and the released
pairs whose torchvision pinned one torch (torch 2.2 to 2.9 with torchvision 0.17 to 0.24). A pair the check knows
nothing about passes. ``OCCKIT_SKIP_TORCH_CHECK=1`` turns the start-up check off.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import sys
from pathlib import Path

#: Set (to anything but "" or "0") to skip the start-up check of the pair.
SKIP_ENV = "OCCKIT_SKIP_TORCH_CHECK"

#: torch (major, minor) -> the torchvision (major, minor) released for it, for the releases whose torchvision
#: required exactly one torch version.
RELEASED_PAIRS: dict[tuple[int, int], tuple[int, int]] = {(2, m): (0, m + 15) for m in range(2, 10)}

#: The error texts of a torchvision that cannot load beside the torch installed.
BROKEN_PAIR_WORDS = (
    "torchvision::nms does not exist",
    "compiled with different CUDA major versions",
    "operator torchvision::",
)

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def installed_version(package: str) -> str | None:
    """``package.__version__`` as its ``version.py`` states it (torch and torchvision both write one, with the
    build's local label: ``2.5.1+cpu``), without importing the package; else its installed metadata's version;
    None when it is not installed."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(loc) / "version.py"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        m = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
        if m:
            return m.group(1)
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _release(version: str) -> tuple[int, ...]:
    """``"2.5.1+cpu"`` -> ``(2, 5, 1)`` (the leading numbers; pre-release tags ignored)."""
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    return tuple(int(x) for x in m.groups() if x is not None) if m else ()


def build_variant(version: str) -> str | None:
    """The build a version's local label names: ``"cpu"``, ``"cuda12"`` (``+cu124``: CUDA 12.4), ``"rocm"``;
    None where there is no label or one this check does not know."""
    label = version.partition("+")[2].lower()
    if label == "cpu":
        return "cpu"
    m = re.fullmatch(r"cu(\d+)", label)
    if m:
        return f"cuda{m.group(1)[:-1]}"
    if label.startswith("rocm"):
        return "rocm"
    return None


def _variant_words(variant: str) -> str:
    return {"cpu": "a CPU build", "rocm": "a ROCm build"}.get(variant, f"a CUDA {variant[4:]} build")


def _required_torch(torchvision_version: str) -> str | None:
    """The torch requirement torchvision's installed metadata states (``==2.5.1``, ``>=2.14.0``), or None."""
    try:
        reqs = importlib.metadata.requires("torchvision") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for req in reqs:
        m = re.fullmatch(r"\s*torch\s*\(?\s*([<>=!~][^;)]*?)\s*\)?\s*", req)
        if m:
            return m.group(1).replace(" ", "")
    return None


def _meets(version: str, spec: str) -> bool | None:
    """Whether ``version`` meets ``spec`` (PEP 440, through ``packaging`` where it is installed), or None when
    that cannot be told."""
    try:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
        from packaging.version import InvalidVersion, Version
    except ImportError:
        return None
    try:
        return Version(version.split("+", 1)[0]) in SpecifierSet(spec)
    except (InvalidSpecifier, InvalidVersion):
        return None


def fix_words() -> str:
    """How to put a matching pair in place, in this environment's own pip."""
    pip = f"{sys.executable} -m pip"
    return (
        f"reinstall the two together from one index: on a CPU machine `{pip} install --force-reinstall --no-deps "
        f"torch torchvision --index-url {CPU_INDEX}`, with a GPU `{pip} install --force-reinstall torch torchvision` "
        '(README, "Install and first run")'
    )


def pair_problem(torch_version: str | None = None, torchvision_version: str | None = None) -> str | None:
    """Why the installed torch and torchvision (or the two versions given) do not load together, in one line
    naming both versions and the fix; None when they match or the check cannot tell."""
    tv = torchvision_version if torchvision_version is not None else installed_version("torchvision")
    t = torch_version if torch_version is not None else installed_version("torch")
    if t is None or tv is None:
        return None
    why = None
    a, b = build_variant(t), build_variant(tv)
    if a is not None and b is not None and a != b:
        why = f"torch is {_variant_words(a)} and torchvision {_variant_words(b)}"
    else:
        rt, rtv = _release(t), _release(tv)
        want = RELEASED_PAIRS.get(rt[:2]) if len(rt) >= 2 else None
        if want is not None and len(rtv) >= 2 and rtv[:2] != want:
            why = f"torch {rt[0]}.{rt[1]} goes with torchvision {want[0]}.{want[1]}"
        elif torchvision_version is None:  # the installed torchvision's own requirement
            spec = _required_torch(tv)
            if spec and _meets(t, spec) is False:
                why = f"torchvision {tv} requires torch{spec}"
    if why is None:
        return None
    return (
        f"torch {t} and torchvision {tv} are not a matching pair ({why}), so torchvision's operators "
        f"(torchvision::nms) cannot load: {fix_words()}"
    )


def broken_pair_message(e: BaseException) -> str | None:
    """The one line for an error raised because torchvision cannot load beside this torch (``operator
    torchvision::nms does not exist``), naming both versions and the fix; None for any other error."""
    if not isinstance(e, (RuntimeError, ImportError, OSError)):
        return None
    text = str(e)
    if not any(w in text for w in BROKEN_PAIR_WORDS):
        return None
    t, tv = installed_version("torch"), installed_version("torchvision")
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return (
        f"torchvision cannot load beside this torch ({first}): torch {t} and torchvision {tv} are not a matching "
        f"pair; {fix_words()}"
    )


def skip_check() -> bool:
    return os.environ.get(SKIP_ENV, "") not in ("", "0")
