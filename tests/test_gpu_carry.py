"""``benchmarks/gpu_carry.py --unpack``: on the lent machine, a carried wheel is unpacked only where its
distribution is missing; an installed one is kept (and a version a carried package excludes named)."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _wheel(folder: Path, dist: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    whl = folder / f"{dist}-{version}-py3-none-any.whl"
    meta = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr(f"{dist}/__init__.py", "VALUE = 1\n")
        z.writestr(f"{dist}-{version}.dist-info/METADATA", meta)
    return whl


def test_unpack_only_what_is_missing(tmp_path):
    import pytest as installed

    carry = tmp_path / "carry"
    carry.mkdir()
    _wheel(carry, "occkit_carry_probe", "1.0", ("pytest>=999", 'nothing; extra == "x"'))
    _wheel(carry, "pytest", "0.1")  # installed here: kept, never replaced
    (carry / "site" / "standin_pkg").mkdir(parents=True)
    (carry / "site" / "standin_pkg" / "__init__.py").write_text("")
    into = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_carry.py"), "--unpack", str(carry), "--into", str(into)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (into / "occkit_carry_probe" / "__init__.py").is_file()
    assert not (into / "pytest").exists()
    assert (into / "standin_pkg" / "__init__.py").is_file()  # the MiniLM stand-in folder (not installed here)
    lines = proc.stdout.splitlines()
    assert any("occkit_carry_probe-1.0" in x and "unpacked (missing here)" in x for x in lines)
    kept = next(x for x in lines if x.startswith("gpu_carry: pytest-0.1"))
    assert f"kept this Python's pytest {installed.__version__}" in kept and "pytest>=999" in kept


def test_unpack_without_a_carry_folder_is_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_carry.py"), "--unpack", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout.count("\n") == 1 and "no such folder" in proc.stdout
