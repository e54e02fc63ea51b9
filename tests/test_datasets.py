"""Loaders: registry, num_samples, CLEVR_v1.0 round trip, CLEVR-Humans, missing-path errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from local_datasets import LOADERS, load_samples
from local_datasets.clevr import approx_box
from local_datasets.synthetic.__main__ import main as synthetic_main
from neptune_core.config import RunConfig, SyntheticConfig
from neptune_core.errors import UnknownNameError, UserError


def _synthetic_config(**kw: object) -> RunConfig:
    syn = SyntheticConfig(num_scenes=3, questions_per_scene=4, seed=2, image_width=240, image_height=160)
    return RunConfig(dataset="clevr_synthetic", synthetic=syn, **kw)  # type: ignore[arg-type]


def test_registry_names_and_unknown_dataset() -> None:
    assert {"clevr", "clevr_synthetic", "clevr_humans"} <= set(LOADERS.names())
    with pytest.raises(UnknownNameError, match="clevr"):
        load_samples(RunConfig(dataset="clever"))


def test_synthetic_on_the_fly_samples_and_num_samples() -> None:
    samples = load_samples(_synthetic_config())
    assert len(samples) == 12
    s = samples[0]
    assert s.image is not None and s.image.size == (240, 160) and s.image_path is None
    assert s.boxes == [[float(c) for c in o["bbox"]] for o in s.scene["objects"]]
    assert s.meta["family"] in {"exist", "count", "query", "compare_attribute", "compare_integer"}
    assert s.meta["functions"] == sorted({n["function"] for n in s.program})
    assert s.meta["split"] == "val" and len({x.id for x in samples}) == 12
    assert [x.id for x in load_samples(_synthetic_config(num_samples=5))] == [x.id for x in samples[:5]]
    with pytest.raises(UserError, match="num_samples"):
        load_samples(_synthetic_config(num_samples=-3))


def test_write_then_load_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "CLEVR_v1.0"
    rc = synthetic_main(["--out", str(out), "--num_scenes", "3", "--questions_per_scene", "4", "--seed", "2",
                         "--split", "val", "--image_width", "240", "--image_height", "160", "--quiet"])  # fmt: skip
    assert rc == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["scenes"] == 3 and info["questions"] == 12
    assert sorted(p.name for p in (out / "images" / "val").iterdir()) == [f"CLEVR_val_00000{i}.png" for i in range(3)]
    loaded = load_samples(RunConfig(dataset="clevr", data_root=str(tmp_path), data_path="CLEVR_v1.0", split="val"))
    fresh = load_samples(_synthetic_config())
    assert [s.id for s in loaded] == [s.id for s in fresh]
    for a, b in zip(loaded, fresh, strict=True):
        assert (a.question, a.answer, a.program, a.boxes, a.meta) == (b.question, b.answer, b.program, b.boxes, b.meta)
        assert json.dumps(a.scene, sort_keys=True) == json.dumps(b.scene, sort_keys=True)
        assert Path(a.image_path).is_file()
        assert np.array_equal(np.asarray(a.load_image()), np.asarray(b.image))


def test_clevr_loader_without_scenes_and_approx_boxes(tmp_path: Path) -> None:
    (tmp_path / "questions").mkdir()
    q = {"question_index": 0, "image_filename": "CLEVR_test_000000.png", "image_index": 0, "question": "Is it?",
         "answer": None, "question_family_index": 3,
         "program": [{"function": "scene", "inputs": [], "value_inputs": []},
                     {"function": "filter_color", "inputs": [0], "value_inputs": ["red"]},
                     {"function": "count", "inputs": [1], "value_inputs": []}]}  # fmt: skip
    (tmp_path / "questions" / "CLEVR_test_questions.json").write_text(json.dumps({"questions": [q]}))
    (s,) = load_samples(RunConfig(dataset="clevr", data_path=str(tmp_path), split="test"))
    assert s.scene is None and s.boxes is None and s.meta["family"] == "count"
    assert s.meta["functions"] == ["count", "filter_color", "scene"] and s.meta["question_family_index"] == 3
    assert s.image_path == str(tmp_path / "images" / "test" / "CLEVR_test_000000.png")
    near = approx_box({"pixel_coords": [240, 160, 8.0], "size": "large"})
    far = approx_box({"pixel_coords": [240, 160, 14.0], "size": "large"})
    small = approx_box({"pixel_coords": [240, 160, 8.0], "size": "small"})
    width = lambda b: b[2] - b[0]  # noqa: E731
    assert width(near) > width(far) and width(near) > width(small) > 0
    assert near[0] < 240 < near[2] and near[1] < 160 < near[3]


def test_clevr_humans_loader(tmp_path: Path) -> None:
    qs = [{"image_filename": "CLEVR_train_000001.png", "image_index": 1, "question": "What is the big shiny thing?",
           "answer": "cube", "split": "val"}]  # fmt: skip
    (tmp_path / "CLEVR-Humans-val.json").write_text(json.dumps({"questions": qs}))
    (tmp_path / "scenes").mkdir()
    scene = {"image_index": 1, "image_filename": "CLEVR_train_000001.png", "objects": [
        {"color": "red", "shape": "cube", "size": "large", "material": "metal", "3d_coords": [0, 0, 0.7],
         "pixel_coords": [100, 120, 10.0], "rotation": 0.0}], "relationships": {}, "directions": {}}  # fmt: skip
    (tmp_path / "scenes" / "CLEVR_train_scenes.json").write_text(json.dumps({"scenes": [scene]}))
    (s,) = load_samples(RunConfig(dataset="clevr_humans", data_path=str(tmp_path), split="val"))
    assert (s.id, s.question, s.answer, s.program) == ("humans_val_000000", qs[0]["question"], "cube", None)
    assert s.meta["family"] == "humans" and s.meta["functions"] == []
    assert s.image_path == str(tmp_path / "images" / "train" / "CLEVR_train_000001.png")
    assert s.scene == scene and len(s.boxes) == 1 and s.boxes[0][0] < 100 < s.boxes[0][2]


@pytest.mark.parametrize("dataset", ["clevr", "clevr_humans"])
def test_missing_data_path_is_a_one_line_user_error(tmp_path: Path, dataset: str) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(UserError) as e:
        load_samples(RunConfig(dataset=dataset, data_path=str(missing)))
    msg = str(e.value)
    assert str(missing) in msg and "\n" not in msg
    assert ("CLEVR_val_questions.json" if dataset == "clevr" else "CLEVR-Humans-val.json") in msg
    with pytest.raises(UserError, match="data_path"):
        load_samples(RunConfig(dataset=dataset, data_path=""))
    tmp_path.joinpath("empty").mkdir()
    with pytest.raises(UserError, match="questions"):
        load_samples(RunConfig(dataset=dataset, data_path=str(tmp_path / "empty")))


def test_bad_synthetic_config_is_a_user_error() -> None:
    cfg = _synthetic_config()
    cfg.synthetic.min_objects = 9
    with pytest.raises(UserError, match="min_objects"):
        load_samples(cfg)


def _raw_generator_form(program: list[dict]) -> list[dict]:
    """A CLEVR v1.0 program as the CLEVR generator writes it before conversion: type / side_inputs."""
    return [
        {"type": n["function"], "inputs": n["inputs"], "side_inputs": n["value_inputs"], "_output": None}
        for n in program
    ]


def test_clevr_raw_generator_nodes_load_and_run_exactly_with_default_semantics(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import run

    out = tmp_path / "CLEVR_v1.0"
    synthetic_main(["--out", str(out), "--num_scenes", "4", "--questions_per_scene", "10", "--seed", "4",
                    "--split", "val", "--image_width", "240", "--image_height", "160", "--quiet"])  # fmt: skip
    qpath = out / "questions" / "CLEVR_val_questions.json"
    data = json.loads(qpath.read_text())
    canonical = [q["program"] for q in data["questions"]]
    for q in data["questions"]:
        q["program"] = _raw_generator_form(q["program"])
    qpath.write_text(json.dumps(data))
    loaded = load_samples(RunConfig(dataset="clevr", data_path=str(out), split="val"))
    assert [s.program for s in loaded] == canonical  # rewritten into the v1.0 form
    capsys.readouterr()
    cfg = tmp_path / "c.json"  # nothing about semantics: the defaults must be exact with perfect perception
    cfg.write_text(json.dumps({"dataset": "clevr", "data_path": str(out), "vlm_model_name": "scene_oracle",
                               "od_model": "gt", "program_generator": "symbolic_clevr", "report": False}))  # fmt: skip
    assert run.main(["--config", str(cfg), "--output_dir", str(tmp_path / "exp")]) == 0
    assert "accuracy: 100.0% (40/40)" in capsys.readouterr().out

    data["questions"][3]["program"][1] = {"type": "filter_color", "inputs": [7], "side_inputs": ["red"]}
    qpath.write_text(json.dumps(data))
    assert run.main(["--config", str(cfg), "--output_dir", str(tmp_path / "exp2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "val question 3: malformed CLEVR program" in err and "bad inputs [7]" in err
    data["questions"][3]["program"][1] = {"inputs": [0]}
    qpath.write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"val question 3: malformed CLEVR program: CLEVR node 1 has no 'function'"):
        load_samples(RunConfig(dataset="clevr", data_path=str(out), split="val"))
