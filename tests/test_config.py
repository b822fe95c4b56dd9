from dataclasses import dataclass, field

import pytest

from occkit.config import ConfigError, from_dict, load_config, parse_overrides, to_dict


@dataclass
class Inner:
    lr: float = 1e-3
    """learning rate"""
    sizes: tuple[int, int] = (4, 8)


@dataclass
class Outer:
    name: str = "x"
    steps: int = 10
    inner: Inner = field(default_factory=Inner)
    weights: list[float] | None = None


def test_round_trip_and_nesting():
    cfg = from_dict(Outer, {"name": "y", "inner": {"lr": 2, "sizes": [1, 2]}})
    assert cfg.inner.lr == 2.0 and isinstance(cfg.inner.lr, float)
    assert cfg.inner.sizes == (1, 2)
    assert from_dict(Outer, to_dict(cfg)) == cfg


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"inner\.lrr"):
        from_dict(Outer, {"inner": {"lrr": 1}})


def test_wrong_types():
    with pytest.raises(ConfigError, match="steps"):
        from_dict(Outer, {"steps": "ten"})
    with pytest.raises(ConfigError, match="sizes"):
        from_dict(Outer, {"inner": {"sizes": [1, 2, 3]}})


def test_yaml_preset_and_overrides(tmp_path):
    p = tmp_path / "preset.yaml"
    p.write_text("steps: 20\ninner:\n  lr: 0.5\n")
    cfg = load_config(Outer, p, ["inner.lr=0.25", "weights=[1, 2]"])
    assert cfg.steps == 20 and cfg.inner.lr == 0.25 and cfg.weights == [1.0, 2.0]
    bad = tmp_path / "bad.yaml"
    bad.write_text("stepz: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*stepz"):
        load_config(Outer, bad)
    with pytest.raises(ConfigError):
        parse_overrides(["novalue"])


def test_scientific_notation_is_a_number_in_presets_and_overrides(tmp_path):
    # YAML 1.1 (PyYAML) reads 1e-3 as a string; a float field takes it as the number it means
    p = tmp_path / "preset.yaml"
    p.write_text("inner:\n  lr: 2e-4\n")
    assert load_config(Outer, p).inner.lr == 2e-4
    cfg = load_config(Outer, None, ["inner.lr=1e30", "weights=[1E-2, -3e+1]"])
    assert cfg.inner.lr == 1e30 and cfg.weights == [0.01, -30.0]
    with pytest.raises(ConfigError, match="expected a number"):
        load_config(Outer, None, ["inner.lr=1e-3x"])
    with pytest.raises(ConfigError, match="expected an integer"):
        load_config(Outer, None, ["steps=1e3"])  # an integer field stays strict
