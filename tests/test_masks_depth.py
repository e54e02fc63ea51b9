"""Masks and depth (issue 18): the synthetic world's exact masks and depths, the oracle segmenter
and depth backends that read them, the marking styles, the ``closer()`` primitive, the run's
preflight and the report's masks. The transformers backends on tiny random models are in
tests/test_segment_depth_tiny.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from analysis.report import safe_row, sample_page
from analysis.report_assets import boxes_svg
from analysis.report_masks import masked_image
from code_generator.checks import check_program
from code_generator.prompting import api_section
from local_datasets import load_samples
from local_datasets.synthetic.annotations import scene_maps
from neptune_core.config import RunConfig, SyntheticConfig, load_config
from neptune_core.errors import ConfigError, UserError
from neptune_core.executor import Executor
from neptune_core.perception_config import DepthConfig, MarkingConfig
from neptune_core.primitives import all_primitives, offered_primitives, program_features
from neptune_core.types import Sample
from probabilistic_tensor import Semantics
from tests.journeys import only_run_dir, rows, run_cli, write_config
from vision_agents.depth import as_distance, closer_matrix
from vision_agents.marking import OBJECT_COLOR, SUBJECT_COLOR, line_width, mark_boxes
from vision_agents.masks import decode_rle, encode_rle, mask_box, outline
from vision_agents.object_marking import ObjectMarker
from vision_agents.oracle import SceneOracleAgent
from vision_agents.perception import Perception
from vision_agents.prompting import score_items
from vision_agents.scene_maps import SceneDepth, SceneMaskSegmenter
from vision_agents.segmenters import CachedSegmenter

SYNTH = {"num_scenes": 4, "questions_per_scene": 4, "seed": 0, "image_width": 240, "image_height": 160}


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return load_samples(RunConfig(dataset="clevr_synthetic", synthetic=SyntheticConfig(**SYNTH)))


def one_per_scene(samples: list[Sample]) -> list[Sample]:
    return list({s.scene["image_index"]: s for s in samples}.values())


class CountingSegmenter(SceneMaskSegmenter):
    """The scene oracle, counting the boxes it is asked to segment."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[int] = []

    def segment(self, image: Image.Image, boxes: list) -> list[np.ndarray]:
        self.asked.append(len(boxes))
        return super().segment(image, boxes)


# ---- masks as data ----------------------------------------------------------------------------
def test_rle_round_trip_and_coco_layout() -> None:
    rng = np.random.default_rng(0)
    cases = [rng.random((7, 5)) > 0.5 for _ in range(20)] + [np.zeros((3, 4), bool), np.ones((3, 4), bool)]
    blob = np.zeros((40, 30), bool)
    blob[5:25, 3:20] = True
    for m in [*cases, blob]:
        rle = encode_rle(m)
        assert rle["size"] == list(m.shape) and isinstance(rle["counts"], str)
        assert np.array_equal(decode_rle(json.loads(json.dumps(rle))), m)
    # COCO's layout: column-major runs starting with background; [[1, 0], [1, 1]] -> runs 0, 2, 1, 1
    tiny = np.array([[1, 0], [1, 1]], bool)
    assert encode_rle(tiny) == {"size": [2, 2], "counts": "021O"}
    assert np.array_equal(decode_rle({"size": [2, 2], "counts": [0, 2, 1, 1]}), tiny)
    with pytest.raises(ValueError, match="2x2"):
        decode_rle({"size": [2, 2], "counts": [1, 1]})


# ---- the synthetic world's exact masks and depths --------------------------------------------
def test_scene_maps_agree_with_the_scene(samples: list[Sample]) -> None:
    for s in one_per_scene(samples):
        scene = s.scene
        maps = scene_maps(scene)
        assert maps.object_ids.shape == maps.depth.shape == (160, 240)
        assert np.array_equal(scene_maps(json.loads(json.dumps(scene))).object_ids, maps.object_ids)  # read back
        for i, obj in enumerate(scene["objects"]):
            m = maps.mask(i)
            assert m.any()
            x1, y1, x2, y2 = mask_box(m)
            bx1, by1, bx2, by2 = obj["bbox"]
            assert bx1 <= x1 and by1 <= y1 and x2 <= bx2 and y2 <= by2  # visible part inside the object's box
            u, v, d = obj["pixel_coords"]
            # the centre's depth is behind the visible surface, within the object's size
            assert float(np.median(maps.depth[m])) < d + 1e-3 and d - float(maps.depth[m].min()) < 1.5
        floor = maps.object_ids == -1
        assert floor.any() and np.isfinite(maps.depth).all() and (maps.depth > 0).all()


def test_oracle_backends_read_the_samples_scene(samples: list[Sample]) -> None:
    s = samples[0]
    image = s.load_image()
    seg, depth = SceneMaskSegmenter(), SceneDepth(exact=True)
    for backend in (seg, depth):
        backend.check_samples(samples)
        backend.begin_sample(s)
    maps = scene_maps(s.scene)
    masks = seg.segment(image, s.boxes)
    assert all(np.array_equal(m, maps.mask(i)) for i, m in enumerate(masks))
    shuffled = [s.boxes[1], s.boxes[0]]
    assert np.array_equal(seg.segment(image, shuffled)[0], maps.mask(1))  # matched by overlap, not position
    nowhere = [[0.0, 0.0, 1.0, 1.0]]
    assert not seg.segment(image, nowhere)[0].any()  # overlaps no object: an empty mask (marked by its box)
    assert depth.exact_depths(image, s.boxes) == [o["pixel_coords"][2] for o in s.scene["objects"]]
    with pytest.raises(ValueError, match="overlaps no scene object"):
        depth.exact_depths(image, nowhere)
    assert np.array_equal(depth.depth_map(image), maps.depth)
    no_camera = Sample(id="x", question="?", scene={"objects": s.scene["objects"]}, boxes=s.boxes)
    with pytest.raises(UserError, match="camera"):
        SceneMaskSegmenter().check_samples([no_camera])
    with pytest.raises(UserError, match="no scene annotations"):
        fresh = SceneMaskSegmenter()
        fresh.begin_sample(Sample(id="y", question="?"))
        fresh.segment(image, s.boxes)


# ---- marking styles ----------------------------------------------------------------------------
def test_marking_styles_draw_what_they_say(samples: list[Sample]) -> None:
    s = samples[0]
    image = s.load_image()
    inner = CountingSegmenter()
    inner.begin_sample(s)
    cached = CachedSegmenter(inner)
    a, b = s.boxes[0], s.boxes[1]
    ma, mb = inner.segment(image, [a, b])
    inner.asked.clear()
    orig = np.asarray(image.convert("RGB")).astype(int)

    assert np.array_equal(np.asarray(ObjectMarker("box").mark(image, (a, b))), np.asarray(mark_boxes(image, a, b)))
    assert np.array_equal(np.asarray(ObjectMarker("box").mark(image, ())), orig)

    out = np.asarray(ObjectMarker("mask_outline", cached).mark(image, (a, b))).astype(int)
    changed = (out != orig).any(-1)
    lw = line_width(image)
    rim_a, rim_b = outline(ma, lw), outline(mb, lw)
    assert changed.any() and not (changed & ~(rim_a | rim_b)).any()  # only the masks' rims are drawn
    assert (out[rim_a] == SUBJECT_COLOR).all() and (out[rim_b & ~rim_a] == OBJECT_COLOR).all()  # subject on top

    dim = 0.35
    over = np.asarray(ObjectMarker("mask_overlay", cached, overlay_dim=dim).mark(image, (a,))).astype(int)
    rest = ~ma
    assert np.abs(over[rest] - np.floor(orig[rest] * dim + 0.5)).max() <= 1  # the rest dimmed
    inside = ma & ~rim_a
    assert inside.any() and (over[inside] != orig[inside]).any(-1).all()  # the object tinted

    crop = ObjectMarker("crop", crop_context=0.5).mark(image, (a,))
    w, h = a[2] - a[0], a[3] - a[1]
    ew = min(image.width, np.ceil(a[2] + w / 2)) - max(0, np.floor(a[0] - w / 2))
    eh = min(image.height, np.ceil(a[3] + h / 2)) - max(0, np.floor(a[1] - h / 2))
    assert crop.size == (ew, eh) and crop.size != image.size

    nowhere = [0.0, 0.0, 12.0, 12.0]  # no object there: an empty mask, so the box outline
    assert np.array_equal(
        np.asarray(ObjectMarker("mask_outline", cached).mark(image, (nowhere,))), np.asarray(mark_boxes(image, nowhere))
    )
    assert inner.asked == [2, 1]  # a and b segmented together once, the empty box once; nothing again

    with pytest.raises(ConfigError, match="needs masks"):
        ObjectMarker("mask_overlay")
    with pytest.raises(ConfigError, match="unknown marking.style"):
        ObjectMarker("halo")


def test_masks_are_computed_once_per_image_and_box_for_score_and_query(samples: list[Sample]) -> None:
    s = samples[0]
    image = s.load_image()
    inner = CountingSegmenter()
    inner.begin_sample(s)
    marker = ObjectMarker("mask_outline", CachedSegmenter(inner))
    items = score_items(image, s.boxes, ["Is it red?", "Is it big?"], 2, marker)  # every ordered pair, two questions
    n = len(s.boxes)
    assert len(items) == 2 * n * (n - 1) and inner.asked == [n]  # all boxes in one call
    for box in s.boxes:  # what query marks (one box) and score(…, 1) marks
        marker.mark(image, (box,))
    assert np.array_equal(np.asarray(items[0][0]), np.asarray(marker.mark(image, (s.boxes[0], s.boxes[1]))))
    assert inner.asked == [n]
    other = samples[-1]
    inner.begin_sample(other)
    marker.mark(other.load_image(), (other.boxes[0],))
    assert inner.asked == [n, 1]  # another image: its own masks


def test_classic_agent_measures_the_mask_under_mask_marking(samples: list[Sample]) -> None:
    from vision_agents.classic_agent import ClassicAgent

    s = samples[0]
    image = s.load_image()
    agent = ClassicAgent.from_config(RunConfig(vlm_model_name="classic"))
    own = agent.features(image, s.boxes[0]).area
    inner = SceneMaskSegmenter()
    inner.begin_sample(s)
    agent.use_marker(ObjectMarker("mask_outline", CachedSegmenter(inner)))
    assert agent.features(image, s.boxes[0]).area == int(scene_maps(s.scene).mask(0).sum())
    assert own > 0


# ---- depth and closer() --------------------------------------------------------------------------
def test_closer_matrix_is_a_soft_depth_order() -> None:
    d = [10.0, 10.1, 12.0]
    p = closer_matrix(d, 0.02)
    assert p.shape == (3, 3) and torch.all(p.diagonal() == 0)
    off = ~torch.eye(3, dtype=torch.bool)
    assert torch.allclose((p + p.T)[off], torch.ones(6))
    assert p[0, 2] > 0.99 and p[2, 0] < 0.01 and 0.5 < p[0, 1] < 0.7  # a 1 % difference at T = 0.02
    assert closer_matrix(d, 0.002)[0, 1] > 0.99  # colder: sharper
    assert as_distance([2.0, 4.0], "inverse") == [0.5, 0.25]  # Depth Anything's relative output: larger is nearer
    with pytest.raises(ValueError, match="kind"):
        as_distance([1.0], "disparity")


def test_closer_is_declared_and_offered_only_with_a_depth_model() -> None:
    prim = all_primitives()["closer"]
    assert prim.needs == "depth" and prim.render is not None
    assert program_features(RunConfig()) == frozenset()
    assert program_features(RunConfig(depth_model="scene_depth")) == {"depth"}
    assert "closer" not in offered_primitives(frozenset()) and "closer" in offered_primitives(frozenset({"depth"}))
    assert "closer(" not in api_section() and "closer(farther" in api_section(frozenset({"depth"}))
    ok = "def execute(score, query, n):\n    return closer().exists()\n"
    assert check_program(ok) == []
    assert any("literal True or False" in p for p in check_program(ok.replace("closer()", "closer(farther=1)")))
    assert any("only farther" in p for p in check_program(ok.replace("closer()", "closer(True, 0, 1)")))


PROGRAM = (
    "def execute(score, query, n):\n    front = closer()\n    behind = closer(farther=True)\n    return front, behind\n"
)


def run_program(
    s: Sample, config: RunConfig, isolation: str = "in_process", program: str = PROGRAM, more_images: tuple = ()
) -> tuple:
    perception = Perception.from_config(config)
    perception.begin_sample(s)
    agent = SceneOracleAgent()
    agent.begin_sample(s)
    ex = Executor(config.executor, Semantics(iota="minmax"), isolation=isolation)
    try:
        out = ex.run(program, agent, s.load_image(), s.boxes, more_images=more_images, perception=perception)
        return out, perception
    finally:
        ex.close()


def test_closer_takes_the_image_of_a_sample_with_several(samples: list[Sample]) -> None:
    s = samples[0]
    config = RunConfig(dataset="clevr_synthetic", depth_model="scene_depth", depth=DepthConfig(reduce="box_median"))
    program = "def execute(score, query, n):\n    return closer(image=1), closer(True, 0)\n"
    out, _ = run_program(s, config, program=program, more_images=((s.load_image(), s.boxes[:2]),))
    assert out.error is None, out.error
    second, first = out.value
    assert tuple(second.data.shape) == (2, 2) and len(first.data) == len(s.boxes)
    assert [e["image"] for e in out.trace] == [1, 0] and out.trace[0]["depth"]["over"] == ["box", "box"]
    bad, _ = run_program(s, config, program=program)  # one image: image=1 is out of range
    assert bad.error is not None and "out of range" in bad.error.message


@pytest.mark.parametrize("isolation", ["process", "in_process"])
def test_closer_runs_on_the_oracle_depth_map_over_the_masks(samples: list[Sample], isolation: str) -> None:
    s = samples[0]
    config = RunConfig(
        dataset="clevr_synthetic",
        segmenter="scene_masks",
        depth_model="scene_depth",
        depth=DepthConfig(temperature=0.05),
    )
    out, perception = run_program(s, config, isolation)
    assert out.error is None, out.error
    front, behind = out.value
    assert front.vars == ("x", "y") and torch.equal(behind.data, front.data.T.contiguous().fill_diagonal_(0))
    maps = scene_maps(s.scene)
    medians = [float(np.median(maps.depth[maps.mask(i)])) for i in range(len(s.boxes))]
    assert torch.allclose(front.data, closer_matrix(medians, 0.05), atol=1e-6)
    entry = out.trace[0]
    assert entry["primitive"] == "closer" and entry["depth"]["over"] == ["mask"] * len(s.boxes)
    assert entry["depth"]["depth_model"] == "scene_depth" and entry["depth"]["temperature"] == 0.05
    assert entry["depths"] == [round(m, 4) for m in medians]
    assert perception.segmenter is not None and perception.segmenter.calls == 1  # both calls: one segmentation


def test_closer_on_exact_object_depths_orders_every_clevr_front_relation(samples: list[Sample]) -> None:
    """CLEVR's "j in front of i" is decided on the ground plane with a margin, which the objects' centre
    depths order exactly; the median over a visible mask need not (see configs/depth-mini-oracle.json)."""
    config = RunConfig(dataset="clevr_synthetic", depth_model="scene_depth", depth=DepthConfig(reduce="exact"))
    pairs = 0
    for s in one_per_scene(samples):
        out, _ = run_program(s, config)
        front, behind = out.value
        assert out.trace[0]["depths"] == [round(o["pixel_coords"][2], 4) for o in s.scene["objects"]]
        for i, row in enumerate(s.scene["relationships"]["front"]):
            for j in row:
                pairs += 1
                assert front.data[j, i] > 0.5 and behind.data[i, j] > 0.5
    assert pairs >= 10


def test_closer_without_a_depth_model_is_an_error_not_a_guess(samples: list[Sample]) -> None:
    s = samples[0]
    agent = SceneOracleAgent()
    agent.begin_sample(s)
    ex = Executor(RunConfig().executor, Semantics(iota="minmax"), isolation="in_process")
    for perception in (None, Perception.from_config(RunConfig())):
        out = ex.run(PROGRAM, agent, s.load_image(), s.boxes, perception=perception)
        assert out.value is None and out.error is not None
        assert out.error.type == "AgentError" and "no depth model is configured" in out.error.message


def test_perception_config_is_checked_and_hashed_only_when_changed() -> None:
    with pytest.raises(ValueError, match="marking.style"):
        MarkingConfig(style="halo")
    with pytest.raises(ValueError, match="temperature"):
        DepthConfig(temperature=0)
    base = RunConfig().config_hash()
    assert (
        RunConfig(marking=MarkingConfig(mask_cache_images=2), depth=DepthConfig(cache_images=1)).config_hash() == base
    )
    assert RunConfig(marking=MarkingConfig(style="crop")).config_hash() != base
    assert RunConfig(depth_model="scene_depth").config_hash() != base
    with pytest.raises(ConfigError, match="exact"):
        Perception.from_config(RunConfig(depth_model="depth_anything_v2_small", depth=DepthConfig(reduce="exact")))


# ---- runs: preflight, the depth relation end to end, the report's masks --------------------------
def _config(tmp_path: Path, **extra: object) -> dict:
    return {
        "dataset": "clevr_synthetic",
        "synthetic": dict(SYNTH),
        "vlm_model_name": "scene_oracle",
        "od_model": "gt",
        "program_generator": "symbolic_clevr",
        "output_dir": str(tmp_path / "exp"),
        **extra,
    }


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"marking": {"style": "mask_outline"}}, "needs masks: set segmenter"),
        ({"depth": {"symbolic_relations": True}}, "needs a depth_model"),
        ({"segmenter": "no-such-org/no-such-sam"}, "segmenter 'no-such-org/no-such-sam'"),
        ({"depth_model": "no-such-org/no-such-depth"}, "depth_model 'no-such-org/no-such-depth'"),
        ({"segmenter": "sam2_larg"}, "sam2_large"),
    ],
)
def test_a_broken_setup_fails_in_preflight_in_one_line(tmp_path, capsys, monkeypatch, extra, expected) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    cfg = write_config(tmp_path, _config(tmp_path, **extra))
    code, _, err = run_cli(["--config", str(cfg)], capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    assert not (tmp_path / "exp").exists()


def test_front_and_behind_from_oracle_depths_end_to_end_with_masks_in_the_report(tmp_path, capsys) -> None:
    synth = {**SYNTH, "num_scenes": 12, "questions_per_scene": 10}
    data = _config(
        tmp_path,
        synthetic=synth,
        segmenter="scene_masks",
        depth_model="scene_depth",
        depth={"symbolic_relations": True, "reduce": "exact"},
        marking={"style": "mask_outline"},
        report=True,
    )
    code, out, err = run_cli(["--config", str(write_config(tmp_path, data))], capsys)
    assert code == 0, err
    run_dir = only_run_dir(tmp_path / "exp")
    results = rows(run_dir)
    depthwise = [r for r in results if any(e.get("primitive") == "closer" for e in r["trace"])]
    assert len(depthwise) >= 10 and all(r["correct"] for r in depthwise)
    asked = [e.get("question", "") for r in results for e in r["trace"]]
    assert not any("in front of" in q or "behind" in q for q in asked)  # the VLM is never asked about depth
    for r in results:
        masks = r["masks"]
        assert masks["segmenter"] == "scene_masks" and masks["marking"] == "mask_outline"
        assert len(masks["rle"]) == len(r["boxes"]) and all(decode_rle(m).any() for m in masks["rle"])
    pages = list((run_dir / "report").glob("sample_*.html"))
    assert pages and all("segmenter scene_masks, marking mask_outline" in p.read_text() for p in pages)
    # a depth question's page: the masks tinted into the image, the closer() call drawn
    row = safe_row(depthwise[0])
    image = next(s for s in load_samples(load_config(str(run_dir / "config.json"))) if s.id == row["id"]).load_image()
    page = sample_page(row, image)
    assert "pixels #0: " in page and ("x closer than y (camera)" in page or "x farther than y (camera)" in page)
    tinted = np.asarray(masked_image(image, row)).astype(int) - np.asarray(image.convert("RGB")).astype(int)
    union = np.any([decode_rle(m) for m in row["masks"]["rle"]], axis=0)
    assert (tinted[union] != 0).any(-1).mean() > 0.9 and not tinted[~union].any()
    assert boxes_svg(masked_image(image, row), row["boxes"]) in page
    assert masked_image(image, {**row, "masks": None}) is image


def test_the_translator_writes_front_and_behind_as_closer() -> None:
    from code_generator.clevr_translator import translate_clevr
    from code_generator.symbolic import SymbolicClevrGenerator

    program = [
        {"function": "scene", "inputs": [], "value_inputs": []},
        {"function": "filter_unique", "inputs": [0], "value_inputs": ["cube"]},
        {"function": "relate", "inputs": [1], "value_inputs": ["front"]},
        {"function": "count", "inputs": [2], "value_inputs": []},
    ]
    plain, depth = translate_clevr(program), translate_clevr(program, depth_relations=True)
    assert "in front of" in plain and "closer(" not in plain
    assert "in front of" not in depth and "closer().contract(" in depth
    behind = translate_clevr([*program[:2], {**program[2], "value_inputs": ["behind"]}, program[3]], True)
    assert "closer(farther=True).contract(" in behind
    left = translate_clevr([*program[:2], {**program[2], "value_inputs": ["left"]}, program[3]], True)
    assert "closer(" not in left  # only depth relations go to the depth model
    with pytest.raises(UserError, match="needs a depth_model"):
        SymbolicClevrGenerator.from_config(RunConfig(depth=DepthConfig(symbolic_relations=True)))
