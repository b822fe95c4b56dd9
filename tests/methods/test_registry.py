"""The method registry: every method declares itself, a run's config holds its method's sections
only, configs written before (every section) still load, and a bad or clashing spec is refused
naming where it comes from."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from occkit.config import ConfigError, to_dict
from occkit.experiment import ExperimentConfig, experiment_from_dict, load_experiment, preset_names
from occkit.methods.registry import MethodSpec, RegistryError, _check, get_method, method_names, registry
from occkit.methods.supervised import SupervisedConfig


def test_occkits_own_methods_register_themselves():
    assert {"supervised", "render_sup", "occscene", "radocc", "langocc", "easyocc", "cigocc"} <= set(method_names())
    assert get_method("radocc").sections.keys() == {"supervised", "radocc"}
    assert get_method("langocc").export is None and "zero-shot" in get_method("langocc").export_refused
    with pytest.raises(RegistryError, match="'nope' is not one of .*occkit.methods"):
        get_method("nope")


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_names_a_registered_method_and_keeps_its_sections_only(preset):
    cfg = load_experiment(preset)
    keys = set(to_dict(cfg))
    assert keys == {"method", "model", "data", "optim", "train", *get_method(cfg.method).sections}


def test_a_config_is_its_methods_class_with_its_sections():
    cfg = ExperimentConfig(method="radocc")
    assert isinstance(cfg, ExperimentConfig) and list(to_dict(cfg)) == [
        "method",
        "model",
        "supervised",
        "radocc",
        "data",
        "optim",
        "train",
    ]
    assert not hasattr(cfg, "langocc")
    with pytest.raises(TypeError, match="langocc"):
        ExperimentConfig(method="radocc", langocc=None)
    with pytest.raises(ConfigError, match="'nope' is not one of"):
        ExperimentConfig(method="nope")


def test_a_config_json_with_every_section_still_loads():
    """What occkit wrote before methods registered themselves: every method's section."""
    data = {"method": "supervised"}
    for name in registry():
        data.update({k: to_dict(v()) for k, v in get_method(name).sections.items()})
    data["supervised"]["lovasz"] = False
    cfg = experiment_from_dict(data, where="RUN/config.json")
    assert cfg.supervised.lovasz is False and not hasattr(cfg, "radocc")
    with pytest.raises(ConfigError, match="RUN/config.json: unknown config key.*nonsense"):
        experiment_from_dict({**data, "nonsense": {}}, where="RUN/config.json")


def test_an_unknown_method_in_a_preset_names_the_file(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("method: nope\n")
    with pytest.raises(ConfigError, match=f"{p}: method: 'nope' is not one of"):
        load_experiment(p)
    with pytest.raises(ConfigError, match="--set method: 'nope'"):
        load_experiment("synth-cpu", ["method=nope"])


def test_a_spec_that_clashes_is_refused_naming_where_it_comes_from():
    @dataclass
    class OtherConfig:
        x: int = 0

    def spec(**kw):
        base = dict(
            name="mine",
            summary="s",
            sections={"mine": OtherConfig},
            build=lambda cfg, load_run: None,
            export_refused="no",
        )
        return MethodSpec(**{**base, **kw})

    sections = {"supervised": (SupervisedConfig, "occkit.methods.supervised")}
    _check(spec(), "pkg", dict(sections))
    with pytest.raises(
        RegistryError,
        match="pkg: section .supervised. is .*OtherConfig, but occkit.methods.supervised declares it as "
        "SupervisedConfig",
    ):
        _check(spec(sections={"supervised": OtherConfig}), "pkg", dict(sections))
    with pytest.raises(RegistryError, match="one of the experiment's own"):
        _check(spec(sections={"data": OtherConfig}), "pkg", dict(sections))
    with pytest.raises(RegistryError, match="pkg: say why"):
        _check(spec(export_refused=None), "pkg", dict(sections))
    with pytest.raises(RegistryError, match="not an occkit.methods.registry.MethodSpec"):
        _check(object(), "pkg", dict(sections))
