import os
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
    the real entry point, ``python -m occkit``), the others in this process (each fresh process costs half a
    second)."""
    first = COMMANDS[0][0]
    r = subprocess.run([sys.executable, "-m", "occkit", first, "--help"], capture_output=True, text=True, timeout=120)
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


def test_every_parser_is_built_without_torch():
    """`occkit VERB --help` builds only that verb's parser, which needs no torch (importing it takes
    seconds: `occkit train --help` took 13 s on a busy machine when its parser asked the method
    registry, `show --help` 8.6 s, `stats --help` 6.7 s). A shared option module that imported a
    dataset module would bring torch into every parser."""
    import subprocess
    import sys

    from occkit.cli import COMMANDS

    code = (
        "import sys\n"
        "from occkit.cli import COMMANDS, build_parser\n"
        "build_parser(tuple(c for c in COMMANDS if c[0] == sys.argv[1]))\n"
        "print('torch' in sys.modules)\n"
    )
    for verb in [c[0] for c in COMMANDS]:
        out = subprocess.run([sys.executable, "-c", code, verb], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "False", f"occkit {verb}: building its parser imports torch"


def test_train_show_and_stats_help_import_no_torch():
    """Their help texts too: occkit's own methods are read from their source for train's list (a
    package's method, loaded through its entry point, imports what it imports: none here)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import occkit.methods.registry as r\n"
        "r._entry_points = lambda: []\n"
        "from occkit.cli import main\n"
        "try:\n"
        "    main([sys.argv[1], '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('torch' in sys.modules, file=sys.stderr)\n"
    )
    for verb in ("train", "show", "stats"):
        env = {**os.environ, "COLUMNS": "1000"}  # no preset name cut by argparse's wrapping
        out = subprocess.run([sys.executable, "-c", code, verb], capture_output=True, text=True, check=True, env=env)
        assert out.stderr.strip().splitlines()[-1] == "False", f"occkit {verb} --help imports torch"
        assert f"usage: occkit {verb}" in out.stdout
        if verb == "train":
            assert "supervised: the camera network trained on 3D labels" in out.stdout and "synth-cpu" in out.stdout


def test_train_help_lists_what_the_registry_holds():
    """The methods read from occkit's source for the help are the registry's own, in its order."""
    from occkit.methods.registry import _in_tree_summaries, is_from_package, registry

    own = [(name, spec.summary) for name, spec in registry().items() if not is_from_package(spec)]
    assert _in_tree_summaries() == own and len(own) >= 7
