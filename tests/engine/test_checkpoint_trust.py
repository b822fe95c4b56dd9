"""Trust of saved runs (issue 73, item 7): a checkpoint whose ``checksums.json`` was deleted (or
lacks a file's entry) loads with one warning naming it, at every loader (weights, trainer state,
config, resume, init_from); a file whose bytes differ from its record is refused naming the file;
a record that is not one is refused naming the record. The shipped weights' init_from line says
where they come from, not that they lack a checksum."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from engine_toy import ToyFrames, ToyMethod  # noqa: E402
from test_engine_hardening import _flip_byte_in_tensor_data  # noqa: E402
from test_engine_train import toy_config  # noqa: E402

from occkit.engine.checkpoint import (  # noqa: E402
    CHECKSUM_FILE,
    MODEL_FILE,
    TRAINER_FILE,
    UnverifiedCheckpointWarning,
    latest_checkpoint,
    load_config_dict,
    load_trainer_state,
    load_weights,
    save_checkpoint,
)
from occkit.engine.init_from import origin_text, report_lines, resolve_init_source  # noqa: E402
from occkit.engine.train import train  # noqa: E402


def _unverified(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, UnverifiedCheckpointWarning)]


def test_a_deleted_record_warns_once_per_folder_and_still_loads(tmp_path):
    ck = save_checkpoint(tmp_path, 3, ToyMethod(), {"a": 1}, {"optimizer": {}})
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        load_weights(ToyMethod(), ck / MODEL_FILE)
    assert _unverified(rec) == []  # intact: silent
    (ck / CHECKSUM_FILE).unlink()
    _flip_byte_in_tensor_data(ck / MODEL_FILE)  # corrupted after the record went: nothing can catch it ...
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        load_weights(ToyMethod(), ck / MODEL_FILE)
        load_trainer_state(ck)
        load_config_dict(ck)
    said = _unverified(rec)
    assert len(said) == 1, said  # ... but it is said, once for the folder
    assert said[0].startswith(f"{ck}: no {CHECKSUM_FILE} (deleted") and "load unverified" in said[0]


def test_a_record_without_the_file_s_entry_warns(tmp_path):
    ck = save_checkpoint(tmp_path, 3, ToyMethod(), {"a": 1}, {"optimizer": {}})
    record = json.loads((ck / CHECKSUM_FILE).read_text())
    del record[MODEL_FILE]
    (ck / CHECKSUM_FILE).write_text(json.dumps(record))
    with pytest.warns(UnverifiedCheckpointWarning, match=f"{CHECKSUM_FILE} has no entry for {MODEL_FILE}"):
        load_weights(ToyMethod(), ck / MODEL_FILE)


@pytest.mark.parametrize("text", ["[1, 2]", '{"model.safetensors": 5}', "{not json"])
def test_a_record_that_is_not_one_is_refused_naming_it(tmp_path, text):
    ck = save_checkpoint(tmp_path, 3, ToyMethod(), {"a": 1}, {"optimizer": {}})
    (ck / CHECKSUM_FILE).write_text(text)
    with pytest.raises(ValueError, match=rf"{CHECKSUM_FILE}: not"):
        load_weights(ToyMethod(), ck / MODEL_FILE)


def test_a_weights_file_outside_a_checkpoint_loads_without_a_warning(tmp_path):
    ck = save_checkpoint(tmp_path / "run", 3, ToyMethod(), {"a": 1}, {"optimizer": {}})
    alone = tmp_path / "alone.safetensors"
    alone.write_bytes((ck / MODEL_FILE).read_bytes())
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        load_weights(ToyMethod(), alone)
    assert _unverified(rec) == []


def test_resume_and_init_from_warn_on_a_deleted_record_and_refuse_a_changed_file(tmp_path, capsys):
    cfg = toy_config(8)
    train(cfg, tmp_path / "a", ToyFrames(8), method=ToyMethod(), stop_at=4, progress=False)
    ck = latest_checkpoint(tmp_path / "a")
    (ck / CHECKSUM_FILE).unlink()
    with pytest.warns(UnverifiedCheckpointWarning, match="step_000004: no checksums.json"):
        train(cfg, tmp_path / "a", ToyFrames(8), method=ToyMethod(), resume=True, stop_at=5, progress=False)
    ck = latest_checkpoint(tmp_path / "a")  # step 5, saved with its record
    assert (ck / CHECKSUM_FILE).is_file()
    (ck / CHECKSUM_FILE).unlink()
    with pytest.warns(UnverifiedCheckpointWarning, match="step_000005: no checksums.json"):
        source = resolve_init_source(tmp_path / "a")
    assert "not verified" in origin_text(source) and "no checksum record" not in origin_text(source)
    # with its record, a trainer state changed after it is refused at resume, naming the file
    train(cfg, tmp_path / "b", ToyFrames(8), method=ToyMethod(), stop_at=4, progress=False)
    state = latest_checkpoint(tmp_path / "b") / TRAINER_FILE
    data = bytearray(state.read_bytes())
    data[-30] ^= 0x01
    state.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"step_000004/{TRAINER_FILE}: corrupted"):
        train(cfg, tmp_path / "b", ToyFrames(8), method=ToyMethod(), resume=True, progress=False)


def test_the_shipped_weights_say_where_they_come_from():
    import occkit

    shipped = Path(occkit.__file__).parent / "weights" / "synth-cpu-demo.safetensors"
    record = json.loads(shipped.with_suffix(".json").read_text())
    source = resolve_init_source(shipped)
    from occkit.engine.init_from import InitReport

    first = report_lines(source, InitReport())[0]
    assert "no checksum record" not in first
    assert f"occkit's shipped weights: {record['preset']}, {record['steps']} steps" in first
    assert f"val mIoU {record['val_miou']}" in first and "synth-cpu-demo.json" in first


def test_under_a_command_the_warning_is_one_line(tmp_path, capsys):
    from occkit.cli import run_guarded

    ck = save_checkpoint(tmp_path, 3, ToyMethod(), {"a": 1}, {"optimizer": {}})
    (ck / CHECKSUM_FILE).unlink()
    with warnings.catch_warnings():  # as outside pytest (which records warnings): printed to stderr
        warnings.simplefilter("default")
        warnings.showwarning = lambda m, c, f, n, file=None, line=None: sys.stderr.write(
            warnings.formatwarning(m, c, f, n, line)
        )
        assert run_guarded("occkit predict", lambda: load_weights(ToyMethod(), ck / MODEL_FILE)) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"occkit predict: warning: {ck}: no {CHECKSUM_FILE}"), err
