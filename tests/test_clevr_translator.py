"""CLEVR program -> NePTune program: every one of the 35 CLEVR functions, run against
the scene oracle on a hand-made scene, gives the hand-computed answer (also checked
against the reference CLEVR executor)."""

from __future__ import annotations

import pytest
from PIL import Image

from code_generator.clevr_translator import CLEVR_FUNCTIONS, ClevrTranslationError, normalise_node, translate_clevr
from code_generator.symbolic import SymbolicClevrGenerator
from local_datasets.synthetic.reference_executor import execute_program
from neptune_core.config import ExecutorConfig, RunConfig
from neptune_core.errors import UserError
from neptune_core.executor import Executor, check_source, to_answer
from neptune_core.types import Sample
from probabilistic_tensor import Semantics
from vision_agents.base import MemoizedAgent
from vision_agents.oracle import SceneOracleAgent

EXACT = Semantics(iota="minmax")

# (size, color, material, shape, x, y): larger x = further right, larger y = nearer the camera
OBJECTS = [
    ("large", "red", "metal", "cube", 1, 1),
    ("small", "blue", "rubber", "sphere", 2, 3),
    ("large", "blue", "metal", "cylinder", 3, 2),
    ("small", "red", "rubber", "cube", 4, 4),
    ("small", "green", "metal", "sphere", 5, 0),
]


def make_scene(objects: list[tuple]) -> tuple[dict, list[list[float]]]:
    """A CLEVR scene dict (with relationships) and one box per object, in scene order."""
    objs = [dict(size=s, color=c, material=m, shape=sh, x=x, y=y) for s, c, m, sh, x, y in objects]
    idx = range(len(objs))
    rel = {
        "left": [[j for j in idx if objs[j]["x"] < objs[i]["x"]] for i in idx],
        "right": [[j for j in idx if objs[j]["x"] > objs[i]["x"]] for i in idx],
        "front": [[j for j in idx if objs[j]["y"] > objs[i]["y"]] for i in idx],
        "behind": [[j for j in idx if objs[j]["y"] < objs[i]["y"]] for i in idx],
    }
    boxes = [[60.0 * o["x"], 60.0 * o["y"], 60.0 * o["x"] + 50, 60.0 * o["y"] + 50] for o in objs]
    return {"objects": objs, "relationships": rel}, boxes


def run_source(source: str, scene: dict, boxes: list[list[float]], semantics: Semantics = EXACT):
    """Run translated source against the scene oracle; return the normalised answer."""
    agent = MemoizedAgent(SceneOracleAgent())
    agent.begin_sample(Sample(id="t", question="?", scene=scene, boxes=boxes))
    image = Image.new("RGB", (8, 8))
    outcome = Executor(ExecutorConfig(), semantics).run(source, agent, image, boxes)
    assert outcome.error is None, f"{outcome.error}\n{source}"
    return to_answer(outcome.value)


def N(function: str, inputs: list[int] | None = None, *values: str) -> dict:
    return {"function": function, "inputs": inputs or [], "value_inputs": list(values)}


def unique_of(*values: str) -> list[dict]:
    """scene -> filter_<attr> per value -> unique (nodes 0..len(values)+1)."""
    nodes = [N("scene")]
    for v in values:
        from neptune_core.clevr_vocab import VALUE_TO_ATTRIBUTE

        nodes.append(N(f"filter_{VALUE_TO_ATTRIBUTE[v]}", [len(nodes) - 1], v))
    nodes.append(N("unique", [len(nodes) - 1]))
    return nodes


def with_tail(nodes: list[dict], *tail: tuple) -> list[dict]:
    """Append nodes given as (function, relative inputs (negative = from the end), *values)."""
    out = list(nodes)
    for fn, rel, *vals in tail:
        out.append(N(fn, [len(out) + r for r in rel], *vals))
    return out


CYL = unique_of("cylinder")  # object 2: large blue metal cylinder
GREEN = unique_of("green")  # object 4: small green metal sphere
BLUE_SPHERE = unique_of("blue", "sphere")  # object 1


def two(a: list[dict], b: list[dict], fn: str) -> list[dict]:
    """Program a ++ b (b's inputs shifted) followed by fn(last of a, last of b)."""
    shift = len(a)
    b2 = [dict(n, inputs=[i + shift for i in n["inputs"]]) for n in b]
    return a + b2 + [N(fn, [len(a) - 1, len(a) + len(b) - 1])]


def count_of(*values: str) -> list[dict]:
    return with_tail([N("scene")], ("filter", [-1], *values), ("count", [-1]))


CASES: list[tuple[str, list[dict], str]] = [
    ("scene+count", [N("scene"), N("count", [0])], "5"),
    ("filter_color", with_tail([N("scene")], ("filter_color", [-1], "red"), ("count", [-1])), "2"),
    ("filter_shape", with_tail([N("scene")], ("filter_shape", [-1], "cube"), ("count", [-1])), "2"),
    ("filter_size", with_tail([N("scene")], ("filter_size", [-1], "large"), ("count", [-1])), "2"),
    ("filter_material", with_tail([N("scene")], ("filter_material", [-1], "metal"), ("count", [-1])), "3"),
    ("exist yes", with_tail([N("scene")], ("filter_color", [-1], "green"), ("exist", [-1])), "yes"),
    ("exist no", with_tail([N("scene")], ("filter_color", [-1], "purple"), ("exist", [-1])), "no"),
    ("exist scene", [N("scene"), N("exist", [0])], "yes"),
    ("unique+query_color", with_tail(CYL, ("query_color", [-1])), "blue"),
    ("query_shape", with_tail(GREEN, ("query_shape", [-1])), "sphere"),
    ("query_size", with_tail(CYL, ("query_size", [-1])), "large"),
    ("query_material", with_tail(BLUE_SPHERE, ("query_material", [-1])), "rubber"),
    ("relate left", with_tail(CYL, ("relate", [-1], "left"), ("count", [-1])), "2"),
    ("relate right", with_tail(CYL, ("relate", [-1], "right"), ("filter_shape", [-1], "sphere"), ("count", [-1])), "1"),
    (
        "relate front",
        with_tail(
            CYL, ("relate", [-1], "front"), ("filter_color", [-1], "red"), ("unique", [-1]), ("query_size", [-1])
        ),
        "small",
    ),
    ("relate behind", with_tail(CYL, ("relate", [-1], "behind"), ("count", [-1])), "2"),
    (
        "union",
        two(
            with_tail([N("scene")], ("filter_color", [-1], "red")),
            with_tail([N("scene")], ("filter_shape", [-1], "sphere")),
            "union",
        )
        + [N("count", [4])],
        "4",
    ),
    (
        "intersect",
        two(
            with_tail([N("scene")], ("filter_color", [-1], "red")),
            with_tail([N("scene")], ("filter_material", [-1], "metal")),
            "intersect",
        )
        + [N("count", [4])],
        "1",
    ),
    (
        "union with scene",
        two([N("scene")], with_tail([N("scene")], ("filter_color", [-1], "red")), "union") + [N("count", [3])],
        "5",
    ),
    (
        "intersect with scene",
        two([N("scene")], with_tail([N("scene")], ("filter_color", [-1], "red")), "intersect") + [N("count", [3])],
        "2",
    ),
    (
        "equal_color yes",
        two(with_tail(CYL, ("query_color", [-1])), with_tail(BLUE_SPHERE, ("query_color", [-1])), "equal_color"),
        "yes",
    ),
    (
        "equal_color no",
        two(with_tail(CYL, ("query_color", [-1])), with_tail(GREEN, ("query_color", [-1])), "equal_color"),
        "no",
    ),
    (
        "equal_shape",
        two(with_tail(GREEN, ("query_shape", [-1])), with_tail(BLUE_SPHERE, ("query_shape", [-1])), "equal_shape"),
        "yes",
    ),
    (
        "equal_size",
        two(with_tail(GREEN, ("query_size", [-1])), with_tail(CYL, ("query_size", [-1])), "equal_size"),
        "no",
    ),
    (
        "equal_material",
        two(with_tail(GREEN, ("query_material", [-1])), with_tail(CYL, ("query_material", [-1])), "equal_material"),
        "yes",
    ),
    ("equal_integer yes", two(count_of("red"), count_of("cube"), "equal_integer"), "yes"),
    ("equal_integer no", two(count_of("red"), count_of("metal"), "equal_integer"), "no"),
    ("equal_integer scene", two([N("scene"), N("count", [0])], count_of("small"), "equal_integer"), "no"),
    ("less_than yes", two(count_of("red"), count_of("metal"), "less_than"), "yes"),
    ("less_than no", two(count_of("metal"), count_of("red"), "less_than"), "no"),
    ("less_than equal", two(count_of("red"), count_of("cube"), "less_than"), "no"),
    ("greater_than yes", two([N("scene"), N("count", [0])], count_of("metal"), "greater_than"), "yes"),
    ("greater_than no", two(count_of("large"), count_of("metal"), "greater_than"), "no"),
    ("same_color", with_tail(CYL, ("same_color", [-1]), ("count", [-1])), "1"),
    ("same_shape", with_tail(GREEN, ("same_shape", [-1]), ("unique", [-1]), ("query_color", [-1])), "blue"),
    ("same_size", with_tail(CYL, ("same_size", [-1]), ("unique", [-1]), ("query_shape", [-1])), "cube"),
    ("same_material", with_tail(CYL, ("same_material", [-1]), ("count", [-1])), "2"),
    (
        "equal_object yes",
        two(
            unique_of("large", "red"),
            with_tail(CYL, ("relate", [-1], "left"), ("filter_material", [-1], "metal"), ("unique", [-1])),
            "equal_object",
        ),
        "yes",
    ),
    ("equal_object no", two(unique_of("large", "red"), CYL, "equal_object"), "no"),
    ("filter", with_tail([N("scene")], ("filter", [-1], "small", "red"), ("count", [-1])), "1"),
    ("filter no values", with_tail([N("scene")], ("filter", [-1]), ("count", [-1])), "5"),
    ("filter_unique", with_tail([N("scene")], ("filter_unique", [-1], "green"), ("query_shape", [-1])), "sphere"),
    ("filter_count", with_tail([N("scene")], ("filter_count", [-1], "rubber")), "2"),
    ("filter_exist", with_tail([N("scene")], ("filter_exist", [-1], "large", "sphere")), "no"),
    ("relate_filter", with_tail(CYL, ("relate_filter", [-1], "front", "rubber"), ("count", [-1])), "2"),
    (
        "relate_filter_unique",
        with_tail(CYL, ("relate_filter_unique", [-1], "behind", "sphere"), ("query_color", [-1])),
        "green",
    ),
    ("relate_filter_count", with_tail(CYL, ("relate_filter_count", [-1], "right", "small")), "2"),
    ("relate_filter_exist", with_tail(CYL, ("relate_filter_exist", [-1], "left", "cylinder")), "no"),
]


@pytest.mark.parametrize("name,program,expected", CASES, ids=[c[0] for c in CASES])
def test_translated_program_gives_the_reference_answer(name: str, program: list[dict], expected: str) -> None:
    scene, boxes = make_scene(OBJECTS)
    assert execute_program(program, scene) == expected  # the hand-computed answer is CLEVR's answer
    source = translate_clevr(program)
    assert str(run_source(source, scene, boxes)) == expected


def test_cases_cover_all_35_functions() -> None:
    used = {n["function"] for _, program, _ in CASES for n in program}
    assert len(CLEVR_FUNCTIONS) == 35
    assert used == set(CLEVR_FUNCTIONS)


def test_generated_source_is_readable_and_uses_canonical_questions() -> None:
    src = translate_clevr(with_tail(CYL, ("relate", [-1], "left"), ("count", [-1])))
    assert src.startswith("def execute(score, query, n):\n")
    assert "# [2] unique <- [1]" in src
    assert '"Is the object in the red box a cylinder?"' in src
    assert '"Is the object in the red box left of the object in the green box?", 2' in src
    assert "return c4" in src


@pytest.mark.parametrize("name,program,expected", CASES[::4], ids=[c[0] for c in CASES[::4]])
def test_translated_source_passes_the_executor_check(name: str, program: list[dict], expected: str) -> None:
    check_source(translate_clevr(program))


def test_scene_is_materialised_only_when_needed() -> None:
    # unique() of the whole scene (a one-object scene) asks whether each box holds an object
    scene, boxes = make_scene(OBJECTS[:1])
    program = [N("scene"), N("unique", [0]), N("query_shape", [1])]
    src = translate_clevr(program)
    assert "Is there an object in the red box?" in src
    assert run_source(src, scene, boxes) == "cube" == execute_program(program, scene)
    assert "Is there an object" not in translate_clevr([N("scene"), N("count", [0])])


def test_older_formats_translate_like_the_official_one() -> None:
    official = with_tail(CYL, ("relate", [-1], "left"), ("count", [-1]))
    old = [{"type": n["function"], "inputs": n["inputs"], "side_inputs": n["value_inputs"]} for n in official]
    bracket = [
        {
            "function": f"{n['function']}[{n['value_inputs'][0]}]" if n["value_inputs"] else n["function"],
            "inputs": n["inputs"],
        }
        for n in official
    ]
    assert translate_clevr(old) == translate_clevr(bracket) == translate_clevr(official)
    assert normalise_node({"type": "filter", "inputs": [0], "side_inputs": ["", "Red"]}, 1) == ("filter", [0], ["red"])


@pytest.mark.parametrize(
    "program,message",
    [
        ([], "non-empty list"),
        ([N("scene"), N("frobnicate", [0])], "unknown CLEVR function 'frobnicate'"),
        ([N("scene"), N("filter_color", [0], "cube")], "which is a shape, not a color"),
        ([N("scene"), N("filter_color", [0], "mauve")], "unknown CLEVR attribute value 'mauve'"),
        ([N("scene"), N("count", [3])], "bad inputs"),
        ([N("scene"), N("relate", [0], "left")], "expects a object as input 0"),
        (CYL + [N("relate", [2], "above")], "needs one relation"),
        ([N("scene"), N("count", [0]), N("query_color", [1])], "node 1 gives a count"),
        (["scene"], "must be a dict"),
    ],
)
def test_malformed_programs_raise_a_clear_error(program: list, message: str) -> None:
    with pytest.raises(ClevrTranslationError, match=message.replace("[", r"\[")):
        translate_clevr(program)


def test_symbolic_generator() -> None:
    gen = SymbolicClevrGenerator.from_config(RunConfig())
    program = count_of("red")
    p = gen.program_for(Sample(id="a", question="How many red things?", program=program))
    assert p.origin == "symbolic" and p.object_names == [] and p.source == translate_clevr(program)
    with pytest.raises(UserError, match="sample b has no ground-truth program"):
        gen.program_for(Sample(id="b", question="?"))


def test_generator_is_registered() -> None:
    from code_generator import GENERATORS

    assert GENERATORS.get("symbolic_clevr") is SymbolicClevrGenerator
