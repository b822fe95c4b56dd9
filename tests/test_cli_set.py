"""`--set` of train, demo, predict and ablate: every override counts, repeated or not (predict kept
only the last `--set` before the option was declared once for all commands)."""

from occkit.cli import COMMANDS, build_parser


def test_repeated_set_flags_all_count():
    for verb, extra in (
        ("train", ["synth-cpu", "--data", "d", "--out", "o"]),
        ("demo", []),
        ("predict", ["--ckpt", "r", "--data", "d", "--out", "o"]),
        ("ablate", ["radocc", "--out", "o"]),
    ):
        p = build_parser(tuple(c for c in COMMANDS if c[0] == verb))
        a = p.parse_args([verb, *extra, "--set", "a=1", "b=2", "--set", "c=3"])
        assert a.set == ["a=1", "b=2", "c=3"], verb
