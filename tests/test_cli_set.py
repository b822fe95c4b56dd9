"""`occkit train --set` and `occkit demo --set`: every override counts, repeated or not."""

from occkit.cli import COMMANDS, build_parser


def test_repeated_set_flags_all_count():
    for verb, extra in (("train", ["synth-cpu", "--data", "d", "--out", "o"]), ("demo", [])):
        p = build_parser(tuple(c for c in COMMANDS if c[0] == verb))
        a = p.parse_args([verb, *extra, "--set", "a=1", "b=2", "--set", "c=3"])
        assert a.set == ["a=1", "b=2", "c=3"], verb
