import subprocess
import sys

import pytest

from occkit.cli import COMMANDS, main


def test_top_level_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name, _, _ in COMMANDS:
        assert name in out


def test_every_subcommand_has_help():
    for name, _, _ in COMMANDS:
        r = subprocess.run(
            [sys.executable, "-m", "occkit.cli", name, "--help"], capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 0, (name, r.stderr)
        assert "usage: occkit " + name in r.stdout


def test_unknown_command_fails(capsys):
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err
