"""Lazy relations: only the pairs a program reads are evaluated, and the algebra is unchanged.

A LazyTensor's fetch callback is a fake here (a recorded lookup into a known matrix); the
thing under test is the algebra and the executor's lazy score, compared with the eager
tensor on the same values: equal results (bit for bit when exact), equal gradients, and
the fetched entries.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from PIL import Image

from neptune_core.config import ExecutorConfig
from neptune_core.executor import Executor
from probabilistic_tensor import LazyPolicy, LazyTensor, ProbabilisticTensor, Semantics
from vision_agents.base import VisionAgent

SEMANTICS = [
    Semantics(iota="minmax"),
    Semantics(iota="softmax"),
    Semantics(tnorm="product", quantifier="product", iota="minmax"),
]


class Recorder:
    """fetch(entries) -> values of ``matrix`` at those entries; remembers every request."""

    def __init__(self, matrix: torch.Tensor) -> None:
        self.matrix = matrix
        self.requests: list[list[tuple[int, ...]]] = []

    def __call__(self, entries: list[tuple[int, ...]]) -> torch.Tensor:
        self.requests.append(list(entries))
        idx = torch.tensor(entries).T
        return self.matrix[tuple(idx)]

    @property
    def fetched(self) -> set[tuple[int, ...]]:
        return {e for r in self.requests for e in r}


def lazy_and_eager(n: int = 6, seed: int = 0, sem: Semantics = SEMANTICS[0], threshold: float = 0.0):
    g = torch.Generator().manual_seed(seed)
    matrix = torch.rand(n, n, generator=g)
    rec = Recorder(matrix)
    lazy = LazyTensor.relation(n, rec, sem, LazyPolicy(threshold))
    eager = ProbabilisticTensor(matrix, vars=("x", "y"), semantics=sem)
    return lazy, eager, rec


def one_hot(n: int, i: int, sem: Semantics) -> ProbabilisticTensor:
    v = torch.zeros(n)
    v[i] = 1.0
    return ProbabilisticTensor(v, semantics=sem).iota()


@pytest.mark.parametrize("sem", SEMANTICS, ids=lambda s: f"{s.tnorm}-{s.iota}")
def test_contract_with_a_one_hot_reads_one_column_and_equals_eager(sem: Semantics) -> None:
    lazy, eager, rec = lazy_and_eager(sem=sem)
    o = one_hot(6, 2, sem)
    if sem.iota == "softmax":  # softmax never puts exactly 0 anywhere: everything is read
        assert torch.equal(lazy.contract(o("y")).data, eager.contract(o("y")).data)
        assert len(rec.fetched) == 36
        return
    got, want = lazy.contract(o("y")) & ~o, eager.contract(o("y")) & ~o
    assert torch.equal(got.data, want.data) and got.vars == want.vars == ("x",)
    assert rec.fetched == {(x, 2) for x in range(6)} and len(rec.requests) == 1
    # the same column again costs nothing; contracting over the subject reads one row
    lazy.contract(o("y"))
    assert len(rec.requests) == 1
    row = lazy.contract(o("x"))
    assert torch.equal(row.data, eager.contract(o("x")).data) and row.vars == ("y",)
    assert rec.fetched == {(x, 2) for x in range(6)} | {(2, y) for y in range(6)}


def test_lazy_on_the_right_and_shared_with_renamings() -> None:
    sem = Semantics(iota="minmax")
    lazy, eager, rec = lazy_and_eager(sem=sem)
    d = ProbabilisticTensor(torch.tensor([0.0, 0.3, 0.0, 0.0, 0.7, 0.0]), semantics=sem)
    got = d("y").contract(lazy)
    assert torch.equal(got.data, d("y").contract(eager).data) and got.vars == ("x",)
    assert rec.fetched == {(x, y) for x in range(6) for y in (1, 4)}
    swapped = lazy("y", "x")  # a renaming shares the entries fetched so far
    assert isinstance(swapped, LazyTensor)
    assert torch.equal(swapped.contract(d("y")).data, eager("y", "x").contract(d("y")).data)
    assert rec.fetched >= {(1, x) for x in range(6)}


def test_every_other_operation_reads_everything_and_equals_eager() -> None:
    sem = Semantics(iota="minmax")
    for op in (
        lambda r: r.exists("y"),
        lambda r: r.forall(),
        lambda r: r.count("x"),
        lambda r: r & ProbabilisticTensor(torch.linspace(0, 1, 6), semantics=sem),
        lambda r: ~r,
        lambda r: r.iota("y"),
        lambda r: r.implies(r("y", "x")),
        lambda r: r > 0.5,
    ):
        lazy, eager, rec = lazy_and_eager(sem=sem)
        assert torch.equal(op(lazy).data, op(eager).data)
        assert len(rec.fetched) == 36
    lazy, eager, _ = lazy_and_eager(sem=sem)
    assert repr(lazy) == repr(eager) and lazy.tolist() == eager.tolist()  # what a program prints is the same


def test_slices_and_diagonal_read_only_what_they_show() -> None:
    lazy, eager, rec = lazy_and_eager()
    assert len(lazy) == 6 and lazy.shape == (6, 6) and rec.requests == []
    assert torch.equal(lazy[3].data, eager[3].data) and rec.fetched == {(3, y) for y in range(6)}
    assert torch.equal(lazy[1, 4].data, eager[1, 4].data) and (1, 4) in rec.fetched
    before = set(rec.fetched)
    diag = lazy("x", "x")
    assert torch.equal(diag.data, eager("x", "x").data)
    assert rec.fetched - before == {(i, i) for i in range(6)} - before
    with pytest.raises(IndexError):
        lazy[9]


def test_mass_threshold_skips_light_objects_within_the_stated_bound() -> None:
    sem = Semantics(iota="minmax")
    weights = torch.tensor([0.0, 0.9, 0.03, 0.05, 0.02, 0.0])
    lazy, eager, rec = lazy_and_eager(sem=sem, threshold=0.06)
    d = ProbabilisticTensor(weights, semantics=sem)("y")
    got, want = lazy.contract(d).data, eager.contract(d).data
    # dropped: 0.02 and 0.03 (together 0.05 <= 0.06); kept: 0.9 and 0.05 (adding 0.05 would pass 0.06)
    assert {y for _, y in rec.fetched} == {1, 3}
    assert lazy.store.dropped_mass == pytest.approx(0.05)
    assert (got - want).abs().max() <= 0.05 + 1e-6
    exact, eager2, rec2 = lazy_and_eager(sem=sem, threshold=0.0)
    assert torch.equal(exact.contract(d).data, eager2.contract(d).data)
    assert {y for _, y in rec2.fetched} == {1, 2, 3, 4} and exact.store.dropped_mass == 0.0


def test_gradients_equal_eager_ones() -> None:
    sem = Semantics(iota="minmax")
    n = 5
    # 1. a trainable relation, a constant one-hot: lazy, and the gradient reaches exactly the pairs read
    base = torch.rand(n, n, generator=torch.Generator().manual_seed(3))
    param_l = base.clone().requires_grad_()
    param_e = base.clone().requires_grad_()
    lazy = LazyTensor.relation(n, Recorder(param_l), sem)
    eager = ProbabilisticTensor(param_e, semantics=sem)
    o = one_hot(n, 1, sem)
    (lazy.contract(o("y")) & ~o).exists().data.backward()
    (eager.contract(o("y")) & ~o).exists().data.backward()
    assert lazy.store.evaluated == n
    assert torch.equal(param_l.grad, param_e.grad)
    # 2. a distribution that carries gradients: every pair is read, gradients equal eager ones
    scores_l = torch.tensor([0.1, 0.9, 0.2, 0.8, 0.0], requires_grad=True)
    scores_e = scores_l.detach().clone().requires_grad_()
    rec = Recorder(base)
    lazy = LazyTensor.relation(n, rec, sem)
    eager = ProbabilisticTensor(base, semantics=sem)
    lazy.contract(ProbabilisticTensor(scores_l, semantics=sem).iota()("y")).count().data.backward()
    eager.contract(ProbabilisticTensor(scores_e, semantics=sem).iota()("y")).count().data.backward()
    assert len(rec.fetched) == n * n and torch.allclose(scores_l.grad, scores_e.grad, atol=0, rtol=0)
    # 3. under no_grad the same distribution only needs its support
    rec = Recorder(base)
    with torch.no_grad():
        LazyTensor.relation(n, rec, sem).contract(ProbabilisticTensor(scores_l, semantics=sem).iota()("y"))
    assert {y for _, y in rec.fetched} == {0, 1, 2, 3}  # minmax iota: the smallest score gets exactly 0


def test_random_programs_equal_eager() -> None:
    """Random chains of contractions and logic on random relations and sparse distributions."""
    g = torch.Generator().manual_seed(7)
    for trial, sem in itertools.product(range(30), SEMANTICS):
        n = int(torch.randint(1, 7, (1,), generator=g))
        matrix = torch.rand(n, n, generator=g)
        weights = torch.rand(n, generator=g) * (torch.rand(n, generator=g) < 0.4)
        unary = ProbabilisticTensor(torch.rand(n, generator=g), semantics=sem)
        d = ProbabilisticTensor(weights, semantics=sem)

        lazy = LazyTensor.relation(n, Recorder(matrix), sem)
        eager = ProbabilisticTensor(matrix, semantics=sem)
        assert torch.equal(_program(lazy, d, unary).data, _program(eager, d, unary).data), (trial, sem)


def _program(r: ProbabilisticTensor, d: ProbabilisticTensor, unary: ProbabilisticTensor) -> ProbabilisticTensor:
    first = r.contract(d("y")) & unary
    the = (unary | first).iota()
    return (r("y", "x").contract(the("y")) & ~the).exists() | first.exists()


# ---- through the executor ------------------------------------------------------------------
class MatrixAgent(VisionAgent):
    """p(yes) from fixed tables: unary = 1 for the box at x1 = 30 only, relation = (x1 of subject + 2 x1 of object) / 200."""

    def __init__(self) -> None:
        self.pairs: list[tuple] = []

    def _rel(self, a, b):  # type: ignore[no-untyped-def]
        return 0.0 if a == b else (a[0] + 2 * b[0]) / 200.0

    def score(self, image, boxes, questions, arity):  # type: ignore[no-untyped-def]
        if arity == 1:
            return torch.tensor([[float(b[0] == 30.0) for b in boxes] for _ in questions])
        if arity == 2:
            self.pairs += [(tuple(a), tuple(b)) for a in boxes for b in boxes]
            return torch.tensor([[[self._rel(a, b) for b in boxes] for a in boxes] for _ in questions])
        return torch.full((len(questions),), 0.5)

    def score_tuples_with_info(self, image, tuples, questions, arity):  # type: ignore[no-untyped-def]
        self.pairs += [tuple(tuple(b) for b in t) for t in tuples]
        return torch.tensor([[self._rel(*t) for t in tuples] for _ in questions]), [{"note": 1} for _ in questions]

    def answer(self, image, box, question):  # type: ignore[no-untyped-def]
        return "red"


BOXES = [[float(10 * i), 0.0, float(10 * i + 5), 5.0] for i in range(5)]
PROGRAM = """
def execute(score, query, n):
    cube = score("Is the object in the red box a cube?", 1)
    the = cube.iota()
    left = score("Is the object in the red box left of the object in the green box?", 2)
    print(len(left))
    return (left.contract(the("y")) & ~the).count()
"""


@pytest.mark.parametrize("isolation", ["process", "in_process"])
def test_executor_lazy_score_records_only_evaluated_pairs(isolation: str) -> None:
    """Behind the sandbox process the pairs are follow-up requests to the parent; in-process direct calls."""
    image = Image.new("RGB", (60, 20))
    sem = Semantics(iota="minmax")
    eager_agent, lazy_agent = MatrixAgent(), MatrixAgent()
    eager = Executor(ExecutorConfig(), sem, isolation=isolation).run(PROGRAM, eager_agent, image, BOXES)
    lazy = Executor(ExecutorConfig(), sem, isolation=isolation, lazy=LazyPolicy()).run(
        PROGRAM, lazy_agent, image, BOXES
    )
    assert eager.error is None and lazy.error is None, (eager.error, lazy.error)
    assert torch.equal(lazy.value.data, eager.value.data) and lazy.printed == eager.printed == ["5"]
    assert len(eager_agent.pairs) == 25 and len(lazy_agent.pairs) == 5  # one column: the object box
    entry = next(e for e in lazy.trace if e["arity"] == 2)
    assert entry["lazy"] == {"evaluated": 5, "entries": 25, "fetches": 1, "dropped_mass": 0.0}
    column = [j for j in range(5) if entry["probs"][0][j] is not None]
    assert len(column) == 1 and all(entry["probs"][i][column[0]] is not None for i in range(5))
    assert sum(v is None for row in entry["probs"] for v in row) == 20 and entry["info"] == {"note": 1}
    full = next(e for e in eager.trace if e["arity"] == 2)
    assert all(entry["probs"][i][column[0]] == full["probs"][i][column[0]] for i in range(5))


def test_executor_lazy_relation_returned_whole_is_evaluated_whole() -> None:
    image = Image.new("RGB", (60, 20))
    agent = MatrixAgent()
    src = 'def execute(score, query, n):\n    return score("Is the red-box object left of the green-box one?", 2)\n'
    out = Executor(ExecutorConfig(), Semantics(), lazy=LazyPolicy()).run(src, agent, image, BOXES)
    assert out.error is None and len(agent.pairs) == 25  # evaluated inside the run, not when read later
    assert type(out.value) is ProbabilisticTensor and out.value.shape == (5, 5)
    assert all(v is not None for row in out.trace[0]["probs"] for v in row)


def test_report_and_pruning_read_lazy_entries() -> None:
    from analysis.ensemble_pruning import agreement_scores
    from analysis.report_assets import prob_bars

    html = prob_bars([[0.9, None], [None, 0.1]])
    assert html.count("not evaluated (lazy relation)") == 2 and "0.90" in html
    call = {
        "primitive": "score",
        "arity": 2,
        "probs": [[0.9, None], [None, 0.1]],
        "info": {"members": {"a": [[0.8, None], [None, 0.2]], "b": [[0.1, None], [None, 0.2]]}},
    }
    scores = agreement_scores([{"trace": [call]}])["vlm"]
    assert scores["a"]["score"] == 1.0 and scores["b"]["score"] == 0.5


def test_pair_requests_from_the_sandbox_are_checked() -> None:
    from neptune_core.primitives import PRIMITIVE_NAMES, get_primitive
    from neptune_core.primitives.base import CallContext

    ctx = CallContext(MatrixAgent(), Image.new("RGB", (60, 20)), BOXES, ExecutorConfig(), lazy=LazyPolicy())
    pairs = get_primitive("score_pairs")
    assert "score_pairs" not in PRIMITIVE_NAMES  # not callable by programs, not in the prompt
    with pytest.raises(ValueError, match="no lazy relation 0"):
        pairs.call(ctx, {"relation": 0, "entries": [[0, 1]]})
    reply = get_primitive("score").call(ctx, {"question": "Is it left of it?", "num_objects": 2, "type": None})
    assert reply == {"relation": 0, "n": 5, "mass_threshold": 0.0}
    for bad in ({"relation": 0, "entries": [[0, 5]]}, {"relation": 0, "entries": [[0, True]]},
                {"relation": 0, "entries": []}, {"relation": 0, "entries": [[0, 1]], "dropped_mass": 2.0},
                {"relation": -1, "entries": [[0, 1]]}, {"relation": 0, "entries": [[0, 1]], "extra": 1}):  # fmt: skip
        with pytest.raises((ValueError, TypeError)):
            pairs.call(ctx, bad)
    values = pairs.call(ctx, {"relation": 0, "entries": [[0, 1], [2, 1]], "dropped_mass": 0.01})
    assert values.tolist() == pytest.approx([20 / 200, (20 + 20) / 200])
    entry = ctx.trace[0]
    assert entry["lazy"] == {"evaluated": 2, "entries": 25, "fetches": 1, "dropped_mass": 0.01}
    assert entry["probs"][0][1] == 0.1 and entry["probs"][1][1] is None


def test_evaluated_replaces_lazy_tensors_and_keeps_everything_else() -> None:
    from probabilistic_tensor.lazy import evaluated

    lazy, eager, rec = lazy_and_eager(n=3)
    plain = [1, ("a", {"k": [2.0]})]
    assert evaluated(plain) is plain and evaluated(eager) is eager
    shared = [lazy, lazy]
    out = evaluated({"r": shared, "again": shared})
    assert type(out["r"][0]) is ProbabilisticTensor and torch.equal(out["r"][0].data, eager.data)
    assert out["r"] is out["again"] and len(rec.requests) == 1  # a shared container is walked once
