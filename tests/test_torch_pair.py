"""A torch and a torchvision that cannot load together (a CPU torch beside PyPI's CUDA torchvision) are one line at
the command's start naming both versions and the fix, never "internal error (a bug in occkit)"."""

from __future__ import annotations

import pytest

from occkit import torch_pair
from occkit.cli import main, run_guarded

CPU_TORCH, CUDA_TORCHVISION = "2.5.1+cpu", "0.20.1+cu124"


def test_the_installed_versions_are_read_as_the_packages_state_them():
    import torch
    import torchvision

    assert torch_pair.installed_version("torch") == torch.__version__
    assert torch_pair.installed_version("torchvision") == torchvision.__version__
    assert torch_pair.installed_version("no_such_package_here") is None
    # the environment the suite runs in is a working pair
    assert torch_pair.pair_problem() is None


@pytest.mark.parametrize(
    "torch_version,torchvision_version",
    [("2.5.1+cpu", "0.20.1+cpu"), ("2.5.1+cu124", "0.20.1+cu124"), ("2.5.1", "0.20.1"), ("2.15.0+cu132", "0.29.2")],
)
def test_a_matching_pair_passes(torch_version, torchvision_version):
    assert torch_pair.pair_problem(torch_version, torchvision_version) is None


@pytest.mark.parametrize(
    "torch_version,torchvision_version,why",
    [
        (CPU_TORCH, CUDA_TORCHVISION, "torch is a CPU build and torchvision a CUDA 12 build"),
        ("2.5.1+cu124", "0.20.1+cpu", "torch is a CUDA 12 build and torchvision a CPU build"),
        ("2.5.1+cu118", "0.20.1+cu124", "torch is a CUDA 11 build and torchvision a CUDA 12 build"),
        ("2.5.1+cpu", "0.19.1+cpu", "torch 2.5 goes with torchvision 0.20"),
    ],
)
def test_a_mismatched_pair_is_one_line_naming_both_versions_and_the_fix(torch_version, torchvision_version, why):
    msg = torch_pair.pair_problem(torch_version, torchvision_version)
    assert msg is not None and "\n" not in msg
    assert f"torch {torch_version} and torchvision {torchvision_version}" in msg and why in msg
    assert torch_pair.CPU_INDEX in msg and "--force-reinstall" in msg and "Install and first run" in msg


@pytest.fixture
def mismatched(monkeypatch):
    """The installed pair as a CPU torch beside a CUDA torchvision."""
    versions = {"torch": CPU_TORCH, "torchvision": CUDA_TORCHVISION}
    monkeypatch.setattr(torch_pair, "installed_version", lambda package: versions.get(package))
    monkeypatch.delenv(torch_pair.SKIP_ENV, raising=False)


def test_the_command_refuses_a_mismatched_pair_at_its_start(mismatched, tmp_path, capsys, monkeypatch):
    ran = []
    import occkit.commands.stats as stats

    monkeypatch.setattr(stats, "run", lambda args: ran.append(args) or 0)
    rc = main(["stats", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and not ran
    assert err.count("\n") == 1 and err.startswith("occkit stats: error: ")
    assert CPU_TORCH in err and CUDA_TORCHVISION in err and "internal error" not in err
    # OCCKIT_SKIP_TORCH_CHECK=1: the command runs
    monkeypatch.setenv(torch_pair.SKIP_ENV, "1")
    assert main(["stats", str(tmp_path)]) == 0 and len(ran) == 1


def test_help_is_still_printed_beside_a_mismatched_pair(mismatched, capsys):
    with pytest.raises(SystemExit) as e:
        main(["stats", "--help"])
    assert e.value.code == 0 and "usage: occkit stats" in capsys.readouterr().out


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("operator torchvision::nms does not exist"),
        RuntimeError(
            "Detected that PyTorch and torchvision were compiled with different CUDA major versions. "
            "PyTorch has CUDA Version=11.8 and torchvision has CUDA Version=12.4."
        ),
    ],
)
def test_the_error_boundary_names_the_pair_not_a_bug_in_occkit(mismatched, capsys, error):
    def fail():
        raise error

    rc = run_guarded("occkit demo", fail)
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and err.startswith("occkit demo: error: torchvision cannot load")
    assert CPU_TORCH in err and CUDA_TORCHVISION in err and torch_pair.CPU_INDEX in err
    assert "internal error" not in err


def test_another_runtime_error_is_still_a_bug_with_its_traceback(mismatched, capsys):
    def fail():
        raise RuntimeError("shape mismatch in occkit")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_guarded("occkit demo", fail)
    assert "internal error" in capsys.readouterr().err
