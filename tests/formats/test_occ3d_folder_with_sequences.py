"""An Occ3D folder that also holds ``sequences/`` (SemanticKITTI's layout) reads as Occ3D, as the rule
says (``annotations.json`` wins), and says once that its ``sequences/`` is not read."""

from __future__ import annotations

import shutil

from occkit.cli import main


def test_an_occ3d_folder_holding_sequences_is_read_as_occ3d_and_says_so_once(synth_root, tmp_path, capsys):
    data = tmp_path / "d"
    shutil.copytree(synth_root, data)
    assert main(["stats", str(data)]) == 0
    assert "sequences/" not in capsys.readouterr().err  # none there: no word
    (data / "sequences" / "00").mkdir(parents=True)
    assert main(["stats", str(data)]) == 0
    err = capsys.readouterr().err
    said = f"occkit: warning: {data}: read as Occ3D (it holds annotations.json); its sequences/ folder"
    assert err.count(said) == 1, err
    assert "--format semantickitti" in err
