"""Config: JSON -> typed dataclass, overrides, unknown keys, bad files."""

from __future__ import annotations

import json

import pytest

from neptune_core.config import RunConfig, load_config, parse_overrides
from neptune_core.errors import ConfigError, UnknownNameError
from neptune_core.registry import Registry


def write(tmp_path, data) -> str:
    p = tmp_path / "c.json"
    p.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(p)


def test_json_and_overrides_are_typed(tmp_path):
    path = write(tmp_path, {"dataset": "clevr", "num_samples": 10, "semantics": {"iota": "minmax"}})
    cfg = load_config(path, parse_overrides(["--num_samples", "3", "--semantics.tau", "0.5", "--report", "false"]))
    assert isinstance(cfg, RunConfig)
    assert cfg.dataset == "clevr" and cfg.num_samples == 3 and cfg.report is False
    assert cfg.semantics.iota == "minmax" and cfg.semantics.tau == 0.5


def test_unknown_key_suggests(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'vlm_model_name'"):
        load_config(write(tmp_path, {"vlm_modelname": "x"}))
    with pytest.raises(ConfigError, match="did you mean 'semantics.gamma'"):
        load_config(None, parse_overrides(["--semantics.gama", "1"]))


@pytest.mark.parametrize(
    "override, message",
    [
        (["--num_samples", "many"], "expects an integer"),
        (["--semantics.tau", "x"], "expects a number"),
        (["--report", "maybe"], "expects true/false"),
        (["--semantics.iota", "argmax"], "semantics.iota must be"),
        (["stray"], "unexpected argument"),
    ],
)
def test_bad_values(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, parse_overrides(override))


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(write(tmp_path, "{not json"))
    with pytest.raises(ConfigError, match="must hold a JSON object"):
        load_config(write(tmp_path, [1, 2]))


def test_config_hash_ignores_output_location():
    a = load_config(None, {"output_dir": "x", "run_name": "a"})
    b = load_config(None, {"output_dir": "y", "run_name": "b"})
    c = load_config(None, {"num_samples": 5})
    assert a.config_hash() == b.config_hash() != c.config_hash()


def test_registry_lists_known_names_and_loads_lazily():
    reg: Registry = Registry("thing")
    reg.register_lazy("json_dumps", "json:dumps")

    @reg.register("mine")
    class Mine:
        pass

    assert reg.get("json_dumps") is json.dumps
    assert reg.get("mine") is Mine
    with pytest.raises(
        UnknownNameError, match=r"unknown thing 'mien' \(did you mean 'mine'\?\); known: json_dumps, mine"
    ):
        reg.get("mien")
