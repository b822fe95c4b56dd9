"""``occkit synth`` speaks within seconds (issue 73, item 8: its first line came after the first
scene, two minutes in): a line when it starts, a line after a scene's first frame with the pace it
gives the whole world, then frame lines at most every ``FRAME_LINE_EVERY_S`` seconds."""

from __future__ import annotations

import re

from occkit.worlds.driving import SynthConfig, generate_dataset, writer


def test_a_start_line_and_frame_lines_come_before_the_first_scene_s_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(writer, "FRAME_LINE_EVERY_S", 0.0)  # every frame: the test's frames are quick
    generate_dataset(tmp_path / "w", SynthConfig(scenes=2, frames=3, seed=1, image_size=(32, 88)), progress=True)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == (
        "synth: 2 scene(s) x 3 frames at 32x88 to generate with 1 worker(s): a line as frames are written, "
        "one per scene with the time left"
    )
    assert re.fullmatch(
        r"synth: scene-0000: frame 1/3, [0-9.]+ s a frame \(at this pace the world takes about [0-9.]+ (s|min)\)",
        lines[1],
    ), lines[1]
    assert re.fullmatch(r"synth: scene-0000: frame 2/3, [0-9.]+ s a frame", lines[2]), lines[2]
    assert lines[3].startswith("synth: scene-0000 done, 1/2 scenes")
    assert lines[4].startswith("synth: scene-0001: frame 1/3, ") and "the world" not in lines[4]  # said once


def test_frame_lines_are_throttled_and_silent_without_progress(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(writer, "FRAME_LINE_EVERY_S", 1e9)  # a busy machine's slow frame must not count
    generate_dataset(tmp_path / "a", SynthConfig(scenes=1, frames=3, seed=1, image_size=(32, 88)), progress=True)
    frames = [x for x in capsys.readouterr().out.splitlines() if ": frame " in x]
    assert [x.split(", ")[0] for x in frames] == ["synth: scene-0000: frame 1/3"]  # the first frame's only
    generate_dataset(tmp_path / "b", SynthConfig(scenes=1, frames=2, seed=1, image_size=(32, 88)))
    assert capsys.readouterr().out == ""
