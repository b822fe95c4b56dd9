import numpy as np
import pytest

from occkit.fileio import load_npz, read_json, save_npz_atomic, write_json_atomic


def test_npz_round_trip_and_no_temp_left(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    p = save_npz_atomic(tmp_path / "sub" / "x.npz", a=a)
    assert np.array_equal(load_npz(p, keys=("a",))["a"], a)
    assert [f.name for f in p.parent.iterdir()] == ["x.npz"]


def test_failed_write_keeps_previous_file(tmp_path):
    p = write_json_atomic(tmp_path / "c.json", {"v": 1})
    with pytest.raises(TypeError):
        write_json_atomic(p, {"v": object()})
    assert read_json(p) == {"v": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["c.json"]


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_npz(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        load_npz(bad)
    p = save_npz_atomic(tmp_path / "k.npz", a=np.zeros(2))
    with pytest.raises(KeyError, match="k.npz.*'b'"):
        load_npz(p, keys=("b",))
    j = tmp_path / "j.json"
    j.write_text("{oops")
    with pytest.raises(ValueError, match="j.json"):
        read_json(j)


def test_atomic_files_get_normal_permissions(tmp_path):
    import os
    import stat

    p = write_json_atomic(tmp_path / "perm.json", {})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask


def test_load_npz_with_keys_reads_only_those(tmp_path):
    p = tmp_path / "z.npz"
    np.savez_compressed(p, a=np.arange(3), b=np.ones(2))
    assert sorted(load_npz(p, keys=("b",))) == ["b"]
    assert sorted(load_npz(p)) == ["a", "b"]


def test_info_file_or_the_folder_prepare_wrote(tmp_path):
    from occkit.fileio import read_info_file, read_info_list

    frames = [{"token": "a"}, {"token": "b"}]
    write_json_atomic(tmp_path / "list.json", frames)
    assert read_info_file(tmp_path / "list.json") == (frames, {})
    prepared = tmp_path / "prepared"
    write_json_atomic(prepared / "infos.json", {"format": "occkit-nuscenes-infos", "dataroot": "/x", "infos": frames})
    assert read_info_list(prepared) == frames  # the folder stands for its infos.json
    assert read_info_file(prepared)[1] == {"format": "occkit-nuscenes-infos", "dataroot": "/x"}
    with pytest.raises(FileNotFoundError, match="without infos.json"):
        read_info_list(tmp_path)
