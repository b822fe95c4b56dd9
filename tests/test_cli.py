import subprocess
import sys

import pytest

from occkit.cli import COMMANDS, main


def test_top_level_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name, _, _ in COMMANDS:
        assert name in out


def test_every_subcommand_has_help(capsys):
    """``occkit NAME --help`` for every command: the first as a user types it (a fresh process,
    the real entry point), the others in this process (each fresh process costs half a second)."""
    first = COMMANDS[0][0]
    r = subprocess.run(
        [sys.executable, "-m", "occkit.cli", first, "--help"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, (first, r.stderr)
    assert "usage: occkit " + first in r.stdout
    for name, _, _ in COMMANDS[1:]:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0, name
        assert "usage: occkit " + name in capsys.readouterr().out


def test_unknown_command_fails(capsys):
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_most_parsers_are_built_without_torch():
    """`occkit VERB --help` builds only that verb's parser; for all but a few verbs that needs no
    torch (importing it takes seconds). A shared option module that imported a dataset module
    would bring torch into every parser."""
    import subprocess
    import sys

    from occkit.cli import COMMANDS

    heavy = {"train"}  # imports the method registry (a method's help); show and stats no longer (issue 73)
    code = (
        "import sys\n"
        "from occkit.cli import COMMANDS, build_parser\n"
        "build_parser(tuple(c for c in COMMANDS if c[0] == sys.argv[1]))\n"
        "print('torch' in sys.modules)\n"
    )
    light = [c[0] for c in COMMANDS if c[0] not in heavy]
    assert len(light) >= 10
    for verb in light:
        out = subprocess.run([sys.executable, "-c", code, verb], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "False", f"occkit {verb}: building its parser imports torch"
