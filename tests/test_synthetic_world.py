"""The synthetic CLEVR world: determinism, scene format, geometry, question coverage, executor."""

from __future__ import annotations

import json

import numpy as np
import pytest

from local_datasets.synthetic.reference_executor import (
    ProgramExecutionError,
    execute_program,
    execute_program_raw,
    family_of,
)
from local_datasets.synthetic.world import iter_world, make_scene
from neptune_core.clevr_vocab import ATTRIBUTES, RELATIONS
from neptune_core.config import SyntheticConfig

OFFICIAL_35 = {
    "scene", "unique", "union", "intersect", "count", "exist", "relate",
    "filter_color", "filter_shape", "filter_size", "filter_material",
    "query_shape", "query_color", "query_size", "query_material",
    "equal_color", "equal_shape", "equal_size", "equal_material",
    "equal_integer", "equal_object", "less_than", "greater_than",
    "same_size", "same_color", "same_material", "same_shape",
    "filter", "filter_unique", "filter_count", "filter_exist",
    "relate_filter", "relate_filter_unique", "relate_filter_count", "relate_filter_exist",
}  # fmt: skip


@pytest.fixture(scope="module")
def world() -> list[tuple[dict, object, list[dict]]]:
    cfg = SyntheticConfig(num_scenes=50, questions_per_scene=21, seed=3)
    return list(iter_world(cfg, "val"))


def test_same_seed_gives_identical_json_and_pixels() -> None:
    cfg = SyntheticConfig(num_scenes=3, questions_per_scene=5, seed=11, image_width=240, image_height=160)
    a, b = list(iter_world(cfg)), list(iter_world(cfg))
    dump = lambda w: json.dumps([[s, q] for s, _, q in w], sort_keys=True)  # noqa: E731
    assert dump(a) == dump(b)
    assert all(np.array_equal(np.asarray(x[1]), np.asarray(y[1])) for x, y in zip(a, b, strict=True))
    other = list(
        iter_world(SyntheticConfig(num_scenes=3, questions_per_scene=5, seed=12, image_width=240, image_height=160))
    )
    assert dump(other) != dump(a)


def test_scene_has_clevr_format(world: list) -> None:
    scene, image, _ = world[0]
    assert set(scene) == {
        "split", "image_index", "image_filename", "objects", "relationships", "directions", "camera",
    }  # fmt: skip
    assert scene["image_filename"] == "CLEVR_val_000000.png"
    assert set(scene["directions"]) == {"left", "right", "front", "behind", "above", "below"}
    assert set(scene["relationships"]) == set(RELATIONS)
    for s, _, _ in world:
        assert 3 <= len(s["objects"]) <= 8
        for o in s["objects"]:
            assert set(o) == {"color", "size", "rotation", "shape", "3d_coords", "material", "pixel_coords", "bbox"}
            for attr, values in ATTRIBUTES.items():
                assert o[attr] in values
            assert len(o["3d_coords"]) == 3 and len(o["pixel_coords"]) == 3
            assert o["3d_coords"][2] > 0 and -3 <= o["3d_coords"][0] <= 3
    assert image.size == (480, 320)


def test_relationships_follow_coordinates(world: list) -> None:
    for scene, _, _ in world:
        objs, rel, dirs = scene["objects"], scene["relationships"], scene["directions"]
        for i, a in enumerate(objs):
            for j, b in enumerate(objs):
                diff = np.subtract(b["3d_coords"], a["3d_coords"])
                for name in RELATIONS:
                    assert (j in rel[name][i]) == (i != j and float(diff @ dirs[name]) > 0.2)
                assert (j in rel["left"][i]) == (i in rel["right"][j])
                assert (j in rel["behind"][i]) == (i in rel["front"][j])
                if j in rel["behind"][i]:  # farther from the camera -> larger depth
                    assert b["pixel_coords"][2] > a["pixel_coords"][2]
            # every pair is ordered both ways (CLEVR's margin rule)
            others = set(range(len(objs))) - {i}
            assert set(rel["left"][i]) | set(rel["right"][i]) == others
            assert set(rel["front"][i]) | set(rel["behind"][i]) == others


def test_bboxes_inside_image_and_around_the_object(world: list) -> None:
    for scene, image, _ in world:
        w, h = image.size
        for o in scene["objects"]:
            x1, y1, x2, y2 = o["bbox"]
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            x, y, _ = o["pixel_coords"]
            assert x1 <= x <= x2 and y1 <= y <= y2
            assert 8 <= x2 - x1 <= w / 2
        # the object's colour is actually drawn inside its box (not the grey floor)
        arr = np.asarray(image, dtype=np.int32)
        o = max(scene["objects"], key=lambda o: o["pixel_coords"][2] * -1)  # nearest object: never occluded
        x, y, _ = o["pixel_coords"]
        patch = arr[y - 2 : y + 3, x - 2 : x + 3]
        if o["color"] != "gray":
            assert (patch.max(axis=2) - patch.min(axis=2)).mean() > 20


def test_nearer_objects_are_larger_and_lower(world: list) -> None:
    for scene, _, _ in world:
        larges = [o for o in scene["objects"] if o["size"] == "large" and o["shape"] == "sphere"]
        for a in larges:
            for b in larges:
                if a["pixel_coords"][2] < b["pixel_coords"][2] - 1.0:
                    assert a["bbox"][2] - a["bbox"][0] > b["bbox"][2] - b["bbox"][0]
                    assert a["pixel_coords"][1] > b["pixel_coords"][1]


def test_questions_cover_all_35_functions_and_families(world: list) -> None:
    questions = [q for _, _, qs in world for q in qs]
    assert len(questions) >= 1000
    used = {node["function"] for q in questions for node in q["program"]}
    assert used == OFFICIAL_35
    families = {family_of(q["program"]) for q in questions}
    assert families == {"exist", "count", "query", "compare_attribute", "compare_integer"}
    assert len({q["question"] for q in questions}) > 0.9 * len(questions)


def test_answers_agree_with_reference_executor_and_are_not_degenerate(world: list) -> None:
    for scene, _, qs in world:
        for q in qs:
            assert execute_program(q["program"], scene) == q["answer"]
            outs = execute_program_raw(q["program"], scene)
            for node in q["program"]:
                assert set(node) == {"function", "inputs", "value_inputs"}
                if node["function"].startswith("equal_") and node["function"] not in ("equal_integer", "equal_object"):
                    a, b = node["inputs"]  # the two compared objects differ
                    assert outs[q["program"][a]["inputs"][0]] != outs[q["program"][b]["inputs"][0]]
                if node["function"].startswith("query_"):  # the queried attribute is not in the description
                    attr = node["function"][6:]
                    assert not any(v in ATTRIBUTES[attr] for v in _description_values(q["program"], node))


def _description_values(program: list[dict], node: dict) -> list[str]:
    """Attribute values naming the object a query_* node asks about (through unique and filter nodes)."""
    values: list[str] = []
    cur = program[node["inputs"][0]]
    while True:
        fn = cur["function"]
        if fn.startswith("filter") or fn.startswith("relate_filter"):
            values += cur["value_inputs"]
        elif fn != "unique":
            return values
        if fn.startswith("relate"):
            return values
        cur = program[cur["inputs"][0]]


def _unfuse(program: list[dict]) -> list[dict]:
    """Expand fused nodes into CLEVR primitives (an independent reading of the convention)."""
    from neptune_core.clevr_vocab import VALUE_TO_ATTRIBUTE

    out: list[dict] = []
    where: dict[int, int] = {}
    for k, node in enumerate(program):
        fn, vals, ins = node["function"], node["value_inputs"], [where[i] for i in node["inputs"]]
        if fn.startswith("relate_filter") or fn.startswith("filter") and fn.split("_")[-1] not in ATTRIBUTES:
            if fn.startswith("relate_"):
                out.append({"function": "relate", "inputs": ins, "value_inputs": [vals[0]]})
                ins, vals = [len(out) - 1], vals[1:]
            for v in vals:
                out.append({"function": f"filter_{VALUE_TO_ATTRIBUTE[v]}", "inputs": ins, "value_inputs": [v]})
                ins = [len(out) - 1]
            term = fn.split("filter")[1].lstrip("_")
            if term:
                out.append({"function": term, "inputs": ins, "value_inputs": []})
            elif not vals and not fn.startswith("relate_"):
                out.append({"function": "union", "inputs": ins * 2, "value_inputs": []})  # identity
        else:
            out.append({"function": fn, "inputs": ins, "value_inputs": vals})
        where[k] = len(out) - 1
    return out


def test_fused_forms_equal_their_expansion(world: list) -> None:
    fused = 0
    for scene, _, qs in world:
        for q in qs:
            prims = _unfuse(q["program"])
            if prims != q["program"]:
                fused += 1
                assert execute_program(prims, scene) == q["answer"]
    assert fused > 100


def test_reference_executor_on_a_hand_made_scene() -> None:
    objs = [
        {"color": "red", "shape": "cube", "size": "large", "material": "metal"},
        {"color": "blue", "shape": "sphere", "size": "small", "material": "rubber"},
        {"color": "red", "shape": "sphere", "size": "small", "material": "rubber"},
    ]
    # x positions 0, 1, 2 (left to right); all at the same depth
    scene = {
        "objects": objs,
        "relationships": {
            "left": [[], [0], [0, 1]],
            "right": [[1, 2], [2], []],
            "front": [[], [], []],
            "behind": [[], [], []],
        },
    }

    def n(fn: str, ins: list[int] = (), vals: list[str] = ()) -> dict:  # type: ignore[assignment]
        return {"function": fn, "inputs": list(ins), "value_inputs": list(vals)}

    red = [n("scene"), n("filter_color", [0], ["red"])]
    assert execute_program([*red, n("count", [1])], scene) == "2"
    assert execute_program([n("scene"), n("filter_exist", [0], ["green"])], scene) == "no"
    cube = [n("scene"), n("filter_unique", [0], ["cube"])]
    assert execute_program([*cube, n("relate_filter_count", [1], ["right", "sphere"])], scene) == "2"
    assert (
        execute_program([*cube, n("relate_filter_unique", [1], ["right", "blue"]), n("query_size", [2])], scene)
        == "small"
    )
    assert execute_program([*cube, n("same_color", [1]), n("unique", [2]), n("query_shape", [3])], scene) == "sphere"
    assert (
        execute_program(
            [
                *cube,
                n("query_color", [1]),
                n("scene"),
                n("filter_unique", [3], ["blue"]),
                n("query_color", [4]),
                n("equal_color", [2, 5]),
            ],
            scene,
        )
        == "no"
    )
    assert (
        execute_program(
            [
                n("scene"),
                n("filter_count", [0], ["small"]),
                n("scene"),
                n("filter_count", [2], ["red"]),
                n("equal_integer", [1, 3]),
            ],
            scene,
        )
        == "yes"
    )
    assert (
        execute_program(
            [
                n("scene"),
                n("filter_count", [0], ["metal"]),
                n("scene"),
                n("filter_count", [2], ["rubber"]),
                n("less_than", [1, 3]),
            ],
            scene,
        )
        == "yes"
    )
    with pytest.raises(ProgramExecutionError, match="unique.*2 objects"):
        execute_program([*red, n("unique", [1]), n("query_shape", [2])], scene)
    with pytest.raises(ProgramExecutionError, match="unknown function"):
        execute_program([n("scene"), n("filter_colour", [0], ["red"])], scene)
    with pytest.raises(ProgramExecutionError, match="not a color"):
        execute_program([n("scene"), n("filter_color", [0], ["cube"]), n("count", [1])], scene)


def test_make_scene_is_independent_of_other_scenes() -> None:
    cfg = SyntheticConfig(seed=5, image_width=160, image_height=120)
    s1, _ = make_scene(cfg, "val", 7)
    list(iter_world(SyntheticConfig(num_scenes=2, seed=5)))
    s2, _ = make_scene(cfg, "val", 7)
    assert s1 == s2 and s1["image_index"] == 7
