"""Executor: programs that work, the trace, the primitives' checks, and to_answer.

Every test runs in both isolation modes (the sandbox process and in-process): they must agree."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from neptune_core.config import ExecutorConfig
from neptune_core.executor import Executor, ProgramCheckError, check_source, to_answer
from neptune_core.primitives import PRIMITIVE_NAMES, VIDEO_PRIMITIVES, all_primitives, get_primitive
from probabilistic_tensor import ProbabilisticTensor, Semantics
from vision_agents.base import VisionAgent

IMAGE = Image.new("RGB", (16, 16))
BOXES = [[0, 0, 4, 4], [4, 0, 8, 4], [8, 0, 12, 4]]
UNARY = {"Is it a cube?": [0.9, 0.2, 0.7], "Is it red?": [0.1, 0.8, 0.6]}
LEFT = [[0.0, 0.9, 0.9], [0.1, 0.0, 0.8], [0.1, 0.2, 0.0]]  # LEFT[i][j]: box i left of box j
ANSWERS = {0: "Green", 1: "Blue", 2: "Gray", None: "kitchen"}


class TableAgent(VisionAgent):
    """Fixed probabilities per question; records its calls."""

    name = "table"

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def score(self, image, boxes, questions, arity):
        self.calls.append(("score", tuple(questions), arity))
        rows = []
        for q in questions:
            if arity == 0:
                rows.append(torch.tensor(0.3))
            elif arity == 1:
                rows.append(torch.tensor(UNARY[q][: len(boxes)]))
            else:
                rows.append(torch.tensor(LEFT)[: len(boxes), : len(boxes)])
        return torch.stack(rows)

    def answer(self, image, box, question):
        self.calls.append(("answer", None if box is None else tuple(box), question))
        return ANSWERS[None if box is None else BOXES.index(box)]


class BrokenAgent(TableAgent):
    def score(self, image, boxes, questions, arity):
        raise RuntimeError("CUDA out of memory")


ISOLATION = {"mode": "process"}


@pytest.fixture(autouse=True, params=["process", "in_process"])
def isolation(request):
    ISOLATION["mode"] = request.param
    return request.param


def run(source: str, boxes=BOXES, agent=None, config=None, semantics=None):
    agent = agent or TableAgent()
    executor = Executor(config or ExecutorConfig(), semantics or Semantics(), isolation=ISOLATION["mode"])
    try:
        return executor.run(source, agent, IMAGE, boxes)
    finally:
        executor.close()


def test_exists_program_and_trace() -> None:
    src = """
def execute(score, query, n):
    cube = score("Is it a cube?")
    red = score("Is it red?", 1, type="color")
    return (cube & red).exists()
"""
    out = run(src)
    assert out.error is None, out.error
    assert isinstance(out.value, ProbabilisticTensor) and out.value.vars == ()
    assert out.value.item() == pytest.approx(0.6)  # max over boxes of min(cube, red)
    assert to_answer(out.value) == "yes"
    assert out.trace == [
        {"primitive": "score", "question": "Is it a cube?", "arity": 1, "type": None, "probs": [0.9, 0.2, 0.7]},
        {"primitive": "score", "question": "Is it red?", "arity": 1, "type": "color", "probs": [0.1, 0.8, 0.6]},
    ]
    assert out.operations > 10 and out.seconds > 0


def test_relation_iota_query_and_counting() -> None:
    src = """
def execute(score, query, n):
    cube = score("Is it a cube?")
    left = score("Is x left of y?", num_objects=2)
    anchor = cube.iota()
    left_of_anchor = left.contract(anchor("y"))
    if count(score("Is it red?")) > 0:
        return query("What color is it?", left_of_anchor.iota())
    return "none"
"""
    out = run(src)
    assert out.error is None, out.error
    cube = torch.tensor(UNARY["Is it a cube?"])
    probs = (cube - cube.min()) / (cube - cube.min()).sum()  # the default iota: min-max, normalised
    expected = (torch.tensor(LEFT) @ probs).clamp(0, 1)
    box = int(expected.argmax())
    assert out.value == ANSWERS[box]
    assert out.trace[1]["arity"] == 2 and out.trace[1]["probs"] == LEFT
    assert out.trace[-1] == {
        "primitive": "query",
        "question": "What color is it?",
        "object_id": box,
        "answer": ANSWERS[box],
    }
    assert to_answer(out.value) == ANSWERS[box].lower()


def test_python_features_programs_use() -> None:
    src = '''
COLORS = ["red", "blue"]

def helper(values, scale=2, *, offset=0):
    """docstring"""
    return [v * scale + offset for v in values]

def execute(score, query: "callable", n: int) -> str:
    scores = {c: score(f"Is it {c}?", 0).item() for c in COLORS}
    best = sorted(scores.items(), key=lambda kv: -kv[1])[0][0]
    acc = []
    for i, v in enumerate(helper([1, 2, 3], offset=1)):
        if i == 1:
            continue
        acc.append(v)
    total = 0
    while total < 10:
        total += 3
    try:
        {}["missing"]
    except KeyError as e:
        acc.append(len(str(e)))
    assert n == 3, "three boxes"
    words = " A b ".strip().lower().split()
    print("debug", acc)
    return f"{best}-{acc}-{total}-{'_'.join(words)}-{max(acc)}-{any(x > 5 for x in acc)}-{3 // 2}-{n if n else 0}"
'''
    out = run(src)
    assert out.error is None, out.error
    assert out.value == "red-[3, 7, 9]-12-a_b-9-True-1-3"
    assert out.printed == ["debug [3, 7, 9]"]


def test_closures_and_recursion_within_the_limit() -> None:
    src = """
def execute(score, query, n):
    def make_adder(k):
        return lambda x: x + k
    def fact(m):
        return 1 if m <= 1 else m * fact(m - 1)
    return make_adder(5)(fact(10))
"""
    out = run(src)
    assert out.error is None and out.value == 3628805


def test_execute_rebound_to_a_non_function() -> None:
    out = run("def execute(score, query, n):\n    return 1\nexecute = 5\n")
    assert out.error.type == "SandboxViolation" and "did not define a function 'execute'" in out.error.message


def test_program_errors_are_recorded_with_line() -> None:
    out = run("def execute(score, query, n):\n    x = [1]\n    return x[5]\n")
    assert out.error.type == "IndexError" and out.error.message.startswith("line 3:")
    out = run("def execute(score, query, n):\n    raise ValueError('no answer')\n")
    assert out.error.type == "ValueError" and "no answer" in out.error.message
    out = run("def execute(score, query, n):\n    return undefined_name\n")
    assert out.error.type == "ProgramCheckError" and "unknown name 'undefined_name'" in out.error.message


def test_score_validation_errors() -> None:
    out = run("def execute(score, query, n):\n    return score('Is it red?', 3)\n")
    assert out.error.type == "ValueError" and "num_objects must be 0, 1 or 2" in out.error.message
    out = run("def execute(score, query, n):\n    return score('Is it red?', 1.0)\n")
    assert out.error.type == "ValueError" and "num_objects must be 0, 1 or 2" in out.error.message
    out = run("def execute(score, query, n):\n    return score(5)\n")
    assert out.error.type == "TypeError" and "question must be a non-empty string" in out.error.message
    out = run("def execute(score, query, n):\n    return query('What?', 7)\n")
    assert out.error.type == "IndexError" and "out of range for 3 boxes" in out.error.message
    out = run("def execute(score, query, n):\n    return query('What?', score('x', 2))\n")
    assert out.error.type == "ValueError" and "one variable" in out.error.message


def test_query_object_id_forms() -> None:
    agent = TableAgent()
    out = run("def execute(score, query, n):\n    return [query('Where?'), query('What color?', 1)]\n", agent=agent)
    assert out.value == ["kitchen", "Blue"]
    assert agent.calls == [("answer", None, "Where?"), ("answer", tuple(BOXES[1]), "What color?")]
    assert [e["object_id"] for e in out.trace] == [None, 1]


def test_no_boxes_gives_empty_tensors_without_calling_the_agent() -> None:
    agent = TableAgent()
    src = "def execute(score, query, n):\n    a = score('Is it red?')\n    b = score('left?', 2)\n    return [n, len(a), tuple(b.vars), a.exists().item()]\n"
    out = run(src, boxes=[], agent=agent)
    assert out.error is None, out.error
    assert out.value[:3] == [0, 0, ("x", "y")]
    assert agent.calls == []
    assert [e["probs"] for e in out.trace] == [[], []]


def test_agent_failure_is_recorded_and_not_catchable() -> None:
    src = "def execute(score, query, n):\n    try:\n        return score('a')\n    except Exception:\n        return 'swallowed'\n"
    out = run(src, agent=BrokenAgent())
    assert out.error.type == "AgentError" and "CUDA out of memory" in out.error.message


def test_semantics_are_passed_to_tensors() -> None:
    src = "def execute(score, query, n):\n    return (score('Is it a cube?') & score('Is it red?')).tolist()\n"
    out = run(src, semantics=Semantics(tnorm="product"))
    assert out.value == pytest.approx([0.09, 0.16, 0.42])


def test_check_source_accepts_good_and_lists_bad() -> None:
    check_source("def execute(score, query, n):\n    return score('a').exists()\n")
    with pytest.raises(ProgramCheckError) as info:
        check_source("import os\ndef execute(score, query, n):\n    return os\n")
    assert isinstance(info.value, ValueError)
    assert info.value.problems == ["line 1: import is not allowed", "line 3: unknown name 'os'"]


def test_primitive_registry() -> None:
    prims = all_primitives()
    assert list(prims) == list(PRIMITIVE_NAMES) and list(prims)[:3] == ["score", "query", "closer"]  # closer: depth
    assert set(prims) - {"score", "query", "closer"} == VIDEO_PRIMITIVES  # the rest are the video samples' (issue 14)
    assert "num_objects" in prims["score"].doc and "object_id" in prims["query"].doc
    assert prims["score"].signature == (
        "score(question: str, num_objects: int = 1, type: str | None = None, image: int = 0) -> ProbabilisticTensor"
    )
    assert prims["query"].signature == (
        "query(question: str, object_id: int | ProbabilisticTensor | None = None, image: int = 0) -> str"
    )
    with pytest.raises(
        Exception, match="unknown primitive 'scroe' \\(did you mean 'score'\\?\\); known: score, query, closer, score_"
    ):
        get_primitive("scroe")


def pt(values, kind="prob"):
    data = torch.tensor(values, dtype=torch.float32)
    return ProbabilisticTensor(data, kind=kind)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "yes"),
        (False, "no"),
        (" Red Cube ", "red cube"),
        (3, "3"),
        (2.6, "3"),
        (pt(0.7), "yes"),
        (pt(0.5), "no"),
        (pt(2.4, "number"), "2"),
        (pt([0.1, 0.7, 0.2]), 1),
    ],
)
def test_to_answer(value, expected) -> None:
    assert to_answer(value) == expected


@pytest.mark.parametrize("value", [None, [1, 2], pt([[0.1, 0.2], [0.3, 0.4]]), float("nan")])
def test_to_answer_rejects(value) -> None:
    with pytest.raises(ValueError, match="cannot"):
        to_answer(value)


def test_generator_expressions_are_lazy() -> None:
    src = """
def execute(score, query, n):
    questions = ["Is it a cube?", "Is it red?"]
    found = any(score(q).exists() for q in questions)
    pairs = [(i, j) for i in range(3) if i != 1 for j in range(i)]
    return [found, pairs, sum(x * 2 for x in range(4))]
"""
    out = run(src)
    assert out.error is None, out.error
    assert out.value[1:] == [[(2, 0), (2, 1)], 12]
    assert bool(out.value[0]) is True
    assert [e["question"] for e in out.trace] == ["Is it a cube?"]  # stopped at the first true one


def test_class_type_asks_whether_the_box_holds_that_class(monkeypatch) -> None:
    agent = TableAgent()
    monkeypatch.setitem(UNARY, "Is the object in the red box a person? Answer yes or no.", [0.9, 0.1, 0.2])
    out = run('def execute(score, query, n):\n    return score("person", 1, type="class").iota()\n', agent=agent)
    assert out.error is None, out.error
    assert agent.calls[0] == ("score", ("Is the object in the red box a person? Answer yes or no.",), 1)
    assert out.trace[0]["question"] == "Is the object in the red box a person? Answer yes or no."


class NotingAgent(TableAgent):
    """Records an unknown concept through score_with_info / answer_with_info."""

    def __init__(self) -> None:
        super().__init__()
        self.model_calls = 0

    def score_with_info(self, image, boxes, questions, arity):
        self.model_calls += 1
        return self.score(image, boxes, questions, arity), [{"unknown_concept": q} for q in questions]

    def answer_with_info(self, image, box, question):
        self.model_calls += 1
        return self.answer(image, box, question), {"note": "guessed"}


def test_backend_info_reaches_the_trace_and_is_memoised() -> None:
    from vision_agents.base import MemoizedAgent

    inner = NotingAgent()
    agent = MemoizedAgent(inner)
    src = """
def execute(score, query, n):
    a = score("Is it a cube?")
    b = score("Is it a cube?")
    return query("What colour?", 0) + query("What colour?", 0)
"""
    out = run(src, agent=agent)
    assert out.error is None
    scores = [e for e in out.trace if e["primitive"] == "score"]
    queries = [e for e in out.trace if e["primitive"] == "query"]
    assert [e["info"] for e in scores] == [{"unknown_concept": "Is it a cube?"}] * 2
    assert [e["info"] for e in queries] == [{"note": "guessed"}] * 2
    assert inner.model_calls == 2  # the repeats came from the memo, with their info


def test_plain_backend_adds_no_info() -> None:
    out = run('def execute(score, query, n):\n    return score("Is it red?").exists()\n')
    assert out.error is None and "info" not in out.trace[0]


def test_every_listed_builtin_is_provided_and_each_run_has_its_own() -> None:
    """The names the checker lets programs use (SAFE_BUILTIN_NAMES, exceptions, the algebra) all exist
    in a run's builtins; the guarded ones are bound to that run's budget, the shared part is copied."""
    from neptune_core.executor.guards import Budget
    from neptune_core.executor.sandbox import EXCEPTION_NAMES, SAFE_BUILTIN_NAMES, make_builtins
    from probabilistic_tensor import PROGRAM_API

    first, second = (make_builtins(Budget(ExecutorConfig()), []) for _ in range(2))
    assert set(SAFE_BUILTIN_NAMES) | set(EXCEPTION_NAMES) | set(PROGRAM_API) <= set(first)
    assert first is not second and first["len"] is second["len"] is len
    assert all(first[name] is not second[name] for name in ("min", "max", "sorted", "range", "sum", "print"))
    first["len"] = None  # a run's table is its own
    assert second["len"] is len
