"""ProbabilisticTensor: the semantics table on hand-computed values, name alignment, interop,
errors, gradients and the program API."""

from __future__ import annotations

import math

import pytest
import torch

from probabilistic_tensor import (
    PROGRAM_API,
    PROGRAM_METHODS,
    ProbabilisticTensor,
    Semantics,
    and_op,
    count,
    exists,
    forall,
    implies,
    iota,
    not_op,
    or_op,
)

PT = ProbabilisticTensor
PRODUCT = Semantics(tnorm="product", quantifier="product")


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def vec(values: list[float], sem: Semantics | None = None, name: str = "x") -> PT:
    return PT(torch.tensor(values, dtype=torch.float64), (name,), sem)


def close(t: PT, expected: object) -> None:
    want = torch.tensor(expected, dtype=torch.float64)
    torch.testing.assert_close(t.data.detach().double(), want, atol=1e-6, rtol=0)


# ----- the semantics table (paper, Table 2) ------------------------------------------
A = [0.2, 0.7, 1.0, 0.0]
B = [0.5, 0.4, 0.3, 0.9]


def test_minmax_connectives_by_hand() -> None:
    a, b = vec(A), vec(B)
    close(a & b, [0.2, 0.4, 0.3, 0.0])
    close(a | b, [0.5, 0.7, 1.0, 0.9])
    close(~a, [0.8, 0.3, 0.0, 1.0])
    close(a.implies(b), [0.8, 0.4, 0.3, 1.0])


def test_product_connectives_by_hand() -> None:
    a, b = vec(A, PRODUCT), vec(B, PRODUCT)
    close(a & b, [0.1, 0.28, 0.3, 0.0])
    close(a | b, [0.6, 0.82, 1.0, 0.9])
    close(~a, [0.8, 0.3, 0.0, 1.0])
    close(a.implies(b), [0.9, 0.58, 0.3, 1.0])


def test_quantifiers_and_count_by_hand() -> None:
    b = vec(B)
    close(b.exists(), 0.9)
    close(b.forall(), 0.3)
    assert b.count().kind == "number"
    close(b.count(), 2.1)
    bp = vec(B, PRODUCT)
    close(bp.exists(), 1 - 0.5 * 0.6 * 0.7 * 0.1)
    close(bp.forall(), 0.5 * 0.4 * 0.3 * 0.9)


def test_quantifier_over_one_variable_of_a_relation() -> None:
    r = PT(torch.tensor([[0.1, 0.8], [0.4, 0.3]], dtype=torch.float64))
    close(r.exists("y"), [0.8, 0.4])
    close(r.forall("x"), [0.1, 0.3])
    close(r.count("y"), [0.9, 0.7])
    assert r.exists("y").vars == ("x",) and r.forall("x").vars == ("y",)
    close(r.exists(), 0.8)
    close(r.exists(["x", "y"]), 0.8)
    close(PT(r.data, semantics=PRODUCT).exists("x"), [1 - 0.9 * 0.6, 1 - 0.2 * 0.7])


def test_iota_softmax_and_minmax_by_hand() -> None:
    a = vec([0.2, 0.9, 0.5])
    soft = Semantics(iota="softmax")
    logits = [math.log(p / (1 - p)) for p in (0.2, 0.9, 0.5)]
    e = [math.exp(v) for v in logits]
    close(PT(a.data, semantics=soft).iota(), [v / sum(e) for v in e])
    hot = PT(a.data, semantics=Semantics(iota="softmax", iota_temperature=0.5)).iota()
    e2 = [math.exp(2 * v) for v in logits]
    close(hot, [v / sum(e2) for v in e2])
    assert Semantics().iota == "minmax"  # the default: exact with perfect perception
    close(a.iota(), [0.0, 0.7 / 1.0, 0.3 / 1.0])
    mm = PT(vec([0.0, 1.0, 0.5]).data, semantics=Semantics(iota="minmax")).iota()
    close(mm, [0.0, 1 / 1.5, 0.5 / 1.5])
    flat = PT(torch.full((4,), 0.3, dtype=torch.float64), semantics=Semantics(iota="minmax")).iota()
    close(flat, [0.25] * 4)


@pytest.mark.parametrize("iota", ["minmax", "softmax"])
def test_one_hot_iota_input_gives_a_one_hot_output(iota: str) -> None:
    for k in range(4):
        one_hot = torch.zeros(4, dtype=torch.float64)
        one_hot[k] = 1.0
        out = PT(one_hot, semantics=Semantics(iota=iota)).iota().data
        torch.testing.assert_close(out, one_hot, atol=1e-9, rtol=0)
    uniform = PT(torch.full((3,), 0.5, dtype=torch.float64), semantics=Semantics(iota=iota)).iota().data
    torch.testing.assert_close(uniform, torch.full((3,), 1 / 3, dtype=torch.float64))


def test_iota_over_a_named_variable_of_a_relation() -> None:
    r = PT(torch.tensor([[0.1, 0.8, 0.3], [0.4, 0.3, 0.2]]))
    dist = r.iota("y")
    assert dist.vars == ("x", "y")
    assert dist.data.sum(1).tolist() == pytest.approx([1.0, 1.0])
    assert r.iota("x").data.sum(0).tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_soft_comparisons_use_the_formulas() -> None:
    tau, gamma = 0.25, 0.25
    three, five = PT(torch.tensor(3.0), kind="number"), PT(torch.tensor(5.0), kind="number")
    assert float(three == five) == pytest.approx(sigmoid(tau * (gamma - 2) / gamma))
    assert float(three == 3) == pytest.approx(sigmoid(tau))
    assert float(three != five) == pytest.approx(1 - sigmoid(tau * (gamma - 2) / gamma))
    assert float(five > three) == pytest.approx(sigmoid(tau * (2 - 1 + gamma)))
    assert float(three > five) == pytest.approx(sigmoid(tau * (-2 - 1 + gamma)))
    assert float(three < five) == pytest.approx(sigmoid(tau * (2 - 1 + gamma)))
    assert float(five >= three) == pytest.approx(sigmoid(tau * (2 + gamma)))
    assert float(three <= five) == pytest.approx(sigmoid(tau * (2 + gamma)))
    assert float(2 < three) == pytest.approx(sigmoid(tau * (1 - 1 + gamma)))  # reflected: three > 2
    for result in (three == five, five > three, three <= 4):
        assert result.kind == "prob"
    assert bool(five > three) and not bool(three > five) and bool(three >= 3) and not bool(three > 3)


def test_comparisons_follow_the_semantics_passed() -> None:
    sem = Semantics(tau=4.0, gamma=0.5)
    c = PT(torch.tensor(2.0), semantics=sem, kind="number")
    assert float(c == 2.2) == pytest.approx(sigmoid(4.0 * (0.5 - 0.2) / 0.5))
    assert float(c > 1) == pytest.approx(sigmoid(4.0 * (1 - 1 + 0.5)))


def test_number_arithmetic() -> None:
    c = vec([0.5, 0.5, 1.0]).count()
    assert (c + 1).kind == "number" and float(c + 1) == pytest.approx(3.0)
    assert float(c - 0.5) == pytest.approx(1.5) and float(4 - c) == pytest.approx(2.0)
    assert float(1 + c) == pytest.approx(3.0)
    assert float(sum([c, c, c])) == pytest.approx(6.0)
    diff = vec([0.2, 0.9]) - vec([0.1, 0.4], name="y")
    assert diff.vars == ("x", "y") and diff.kind == "number"
    close(diff, [[0.1, -0.2], [0.8, 0.5]])


# ----- alignment by name -------------------------------------------------------------
def test_unary_joined_with_relation_aligns_by_name() -> None:
    sphere = vec([0.9, 0.1, 0.6])
    left = PT(torch.arange(9, dtype=torch.float64).reshape(3, 3) / 10)
    out = sphere("x") & left("x", "y")
    assert out.vars == ("x", "y")
    expected = [[min(sphere.data[i].item(), left.data[i, j].item()) for j in range(3)] for i in range(3)]
    close(out, expected)
    on_y = sphere("y") & left("x", "y")
    assert on_y.vars == ("y", "x")
    close(on_y, [[min(sphere.data[j].item(), left.data[i, j].item()) for i in range(3)] for j in range(3)])


def test_vectors_over_different_variables_give_the_outer_result() -> None:
    a, b = vec([0.2, 0.9]), vec([0.5, 0.1, 0.7], name="y")
    out = b & a
    assert out.vars == ("y", "x") and tuple(out.data.shape) == (3, 2)
    close(out, [[min(y, x) for x in (0.2, 0.9)] for y in (0.5, 0.1, 0.7)])


def test_relation_with_swapped_variables_transposes() -> None:
    r = PT(torch.tensor([[0.1, 0.2], [0.3, 0.4]], dtype=torch.float64))
    close(r | r("y", "x"), [[0.1, 0.3], [0.3, 0.4]])


def test_python_scalars_broadcast() -> None:
    a = vec([0.2, 0.7])
    close(a & 0.5, [0.2, 0.5])
    close(0.5 & a, [0.2, 0.5])
    close(a | True, [1.0, 1.0])
    close(False | a, [0.2, 0.7])
    close(implies(1, a), [0.2, 0.7])
    close(and_op(0.5, a), [0.2, 0.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        a & 2


def test_mismatched_sizes_of_a_shared_variable_raise() -> None:
    with pytest.raises(ValueError, match="'x' has 2 objects"):
        vec([0.1, 0.2]) & vec([0.1, 0.2, 0.3])


# ----- contract, rename, indexing ----------------------------------------------------
def test_contract_with_a_distribution() -> None:
    left = PT(torch.tensor([[0.1, 0.9, 0.3], [0.8, 0.2, 0.4], [0.5, 0.5, 0.6]], dtype=torch.float64))
    target = vec([0.2, 0.3, 0.5])
    out = left("x", "y").contract(target("y"))
    assert out.vars == ("x",) and out.kind == "prob"
    close(out, [sum(target.data[j].item() * left.data[i, j].item() for j in range(3)) for i in range(3)])
    assert left.contract(vec([1.0, 1.0, 1.0], name="y")).data.max().item() == 1.0  # clamped


def test_rename_and_diagonal() -> None:
    r = PT(torch.tensor([[0.1, 0.2], [0.3, 0.4]]))
    renamed = r("y", "z")
    assert renamed.vars == ("y", "z") and renamed.data is r.data
    diag = r("x", "x")
    assert diag.vars == ("x",) and diag.data.tolist() == pytest.approx([0.1, 0.4])
    with pytest.raises(ValueError, match="expected 2 variable names"):
        r("x")
    with pytest.raises(TypeError, match="non-empty strings"):
        r("x", 1)


def test_indexing_len_iteration() -> None:
    r = PT(torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]))
    assert len(r) == 2
    row = r[1]
    assert row.vars == ("y",) and row.data.tolist() == pytest.approx([0.4, 0.5, 0.6])
    assert float(r[1, 2]) == pytest.approx(0.6) and float(r[-1][0]) == pytest.approx(0.4)
    assert [t.tolist() for t in r] == r.tolist()
    with pytest.raises(IndexError, match="out of range"):
        r[2]
    with pytest.raises(TypeError, match="ints"):
        r["a"]
    with pytest.raises(TypeError, match="len"):
        len(r[0, 0])


def test_bool_float_int_item_argmax_repr() -> None:
    assert bool(PT(torch.tensor(0.6))) and not bool(PT(torch.tensor(0.4)))
    assert bool(PT(torch.tensor(0.7), kind="number")) and not bool(PT(torch.tensor(0.2), kind="number"))
    assert int(PT(torch.tensor(2.7), kind="number")) == 3
    assert PT(torch.tensor(0.25)).item() == 0.25 and float(PT(torch.tensor(0.5))) == 0.5
    assert vec([0.1, 0.8, 0.3]).argmax() == 1
    assert f"{PT(torch.tensor(0.123456)):.2f}" == "0.12"
    text = repr(vec([0.25, 0.5]))
    assert "0.25" in text and "('x',)" in text and "prob" in text
    with pytest.raises(TypeError, match=r"use \.exists\(\) or index it"):
        bool(vec([0.9, 0.9]))
    with pytest.raises(TypeError, match="exists"):
        if vec([0.9]) & vec([0.8]):
            pass
    with pytest.raises(TypeError, match="one variable"):
        PT(torch.rand(2, 2)).argmax()
    with pytest.raises(TypeError):
        float(vec([0.1, 0.2]))


def test_hash_is_identity_based() -> None:
    a, b = vec([0.5]), vec([0.5])
    assert len({a, b}) == 2 and a in {a: 1}


# ----- errors ------------------------------------------------------------------------
def test_constructor_validation_and_defaults() -> None:
    assert PT(torch.tensor(0.5)).vars == () and PT(torch.rand(3)).vars == ("x",)
    assert PT(torch.rand(2, 3)).vars == ("x", "y")
    assert PT([0.1, 0.2]).data.dtype.is_floating_point
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        PT(torch.tensor([0.5, 1.5]))
    assert PT(torch.tensor([0.5, 1.5]), kind="number").kind == "number"
    with pytest.raises(ValueError, match="expected 1 variable names"):
        PT(torch.rand(3), ("x", "y"))
    with pytest.raises(ValueError, match="distinct"):
        PT(torch.rand(2, 2), ("x", "x"))
    with pytest.raises(ValueError, match="kind"):
        PT(torch.rand(2), kind="bool")
    with pytest.raises(ValueError, match="NaN"):
        PT(torch.tensor([float("nan")]))


def test_unknown_variable_and_ambiguous_iota_raise() -> None:
    r = PT(torch.rand(2, 2))
    with pytest.raises(ValueError, match=r"unknown variable 'z'.*\('x', 'y'\)"):
        r.exists("z")
    with pytest.raises(ValueError, match="ambiguous"):
        r.iota()
    with pytest.raises(ValueError, match="ambiguous"):
        PT(torch.tensor(0.3)).iota()
    with pytest.raises(TypeError, match="string"):
        r.count(0)


def test_logic_on_numbers_and_bad_operands_raise() -> None:
    c = vec([0.5, 0.5]).count()
    with pytest.raises(TypeError, match="compare it first"):
        c & vec([0.1, 0.2])
    with pytest.raises(TypeError, match="compare it first"):
        c.exists()
    with pytest.raises(TypeError, match="str"):
        _ = vec([0.1]) == "red"
    with pytest.raises(TypeError, match="ProbabilisticTensor"):
        exists([0.1, 0.2])
    with pytest.raises(TypeError, match="ProbabilisticTensor"):
        vec([0.1]).contract(0.5)


def test_empty_variables() -> None:
    empty = PT(torch.zeros(0))
    assert float(empty.exists()) == 0.0 and float(empty.forall()) == 1.0 and float(empty.count()) == 0.0
    assert float(PT(torch.zeros(0), semantics=PRODUCT).exists()) == 0.0
    with pytest.raises(ValueError, match="no objects"):
        empty.iota()
    with pytest.raises(ValueError, match="no objects"):
        empty.argmax()


# ----- semantics plumbing ------------------------------------------------------------
def test_binary_ops_use_the_left_operands_semantics() -> None:
    minmax, product = vec([0.5]), vec([0.5], PRODUCT)
    assert (minmax & product).tolist() == [0.5]
    assert (product & minmax).tolist() == [0.25]
    assert (product & minmax).semantics is PRODUCT
    assert (0.5 & product).tolist() == [0.25]


def test_results_keep_the_semantics() -> None:
    sem = Semantics(tnorm="product", iota="minmax", iota_temperature=2.0)
    a = vec([0.2, 0.6], sem)
    for result in (a & a, ~a, a.exists(), a.count(), a.iota(), a.count() > 1, a("y"), a[0]):
        assert result.semantics is sem


# ----- gradients ---------------------------------------------------------------------
def test_gradient_through_min_goes_to_the_smaller_argument() -> None:
    x = torch.tensor([0.2, 0.8], requires_grad=True)
    y = torch.tensor([0.6, 0.4], requires_grad=True)
    (PT(x) & PT(y)).count().data.backward()
    assert x.grad.tolist() == [1.0, 0.0] and y.grad.tolist() == [0.0, 1.0]


def test_gradient_through_count_and_comparison() -> None:
    x = torch.tensor([0.2, 0.8, 0.5], requires_grad=True)
    (PT(x).count() > 1).data.backward()
    assert torch.isfinite(x.grad).all() and (x.grad > 0).all()
    x.grad = None
    (PT(x).count() == 3).data.backward()
    assert (x.grad > 0).all()  # count 1.5 is below 3: raising any entry brings it closer


def test_gradient_through_iota_and_contract() -> None:
    target = torch.tensor([0.1, 0.9, 0.3], requires_grad=True)
    rel = torch.tensor([[0.2, 0.7, 0.1], [0.9, 0.1, 0.5], [0.3, 0.3, 0.3]], requires_grad=True)
    out = PT(rel).contract(PT(target).iota()("y"))
    out[0].data.backward()
    assert torch.isfinite(target.grad).all() and target.grad.abs().sum() > 0
    assert target.grad[1] > 0  # row 0 is largest at y=1: more mass there raises it
    assert rel.grad[0].abs().sum() > 0 and rel.grad[1:].abs().sum() == 0


def test_gradients_finite_through_minmax_iota_of_a_flat_vector() -> None:
    x = torch.full((3,), 0.4, requires_grad=True)
    PT(x, semantics=Semantics(iota="minmax")).iota()[0].data.backward()
    assert torch.isfinite(x.grad).all()


def test_gradient_through_product_quantifiers_with_zeros() -> None:
    x = torch.tensor([0.0, 0.5, 1.0], requires_grad=True)
    PT(x, semantics=PRODUCT).exists().data.backward()
    assert torch.isfinite(x.grad).all() and x.grad[1] == 0.0  # exists is already 1 via x[2]
    x.grad = None
    PT(x, semantics=PRODUCT).forall().data.backward()
    assert torch.isfinite(x.grad).all() and x.grad[0] == pytest.approx(0.5)


# ----- program API -------------------------------------------------------------------
def test_program_api_functions_match_the_operators() -> None:
    a, b = vec([0.2, 0.7]), vec([0.5, 0.1], name="y")
    assert and_op(a, b).tolist() == (a & b).tolist()
    assert or_op(a, b).tolist() == (a | b).tolist()
    assert not_op(a).tolist() == (~a).tolist()
    assert implies(a, b).tolist() == a.implies(b).tolist()
    assert exists(a).tolist() == a.exists().tolist() and forall(a, "x").tolist() == a.forall().tolist()
    assert count(a).tolist() == a.count().tolist() and iota(a).tolist() == a.iota().tolist()
    assert set(PROGRAM_API) == {"and_op", "or_op", "not_op", "implies", "exists", "forall", "count", "iota"}
    for name in PROGRAM_METHODS:
        assert callable(getattr(PT, name)) and getattr(PT, name).__doc__
    for fn in PROGRAM_API.values():
        assert fn.__doc__ and len(fn.__doc__) < 160


def test_probability_against_threshold_compares_values_and_keeps_gradient():
    data = torch.tensor([0.2, 0.7], requires_grad=True)
    p = ProbabilisticTensor(data)
    assert [bool(t) for t in (p > 0.5)] == [False, True]
    assert [bool(t) for t in (p < 0.5)] == [True, False]
    assert bool(p[1] > p[0]) and not bool(p[0] > p[1])
    (p > 0.5).count().data.backward()
    assert torch.isfinite(data.grad).all() and data.grad.abs().sum() > 0
    # counts still use the soft number comparison of the paper
    c = ProbabilisticTensor(torch.tensor([1.0, 1.0, 0.0])).count()
    sem = c.semantics
    assert float(c > 1) == pytest.approx(float(torch.sigmoid(torch.tensor(sem.tau * (2 - 1 - 1 + sem.gamma)))))
