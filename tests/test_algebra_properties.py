"""Property tests (hypothesis) of the ProbabilisticTensor algebra under every semantics."""

from __future__ import annotations

import itertools

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from probabilistic_tensor import ProbabilisticTensor, Semantics

PT = ProbabilisticTensor
SEMANTICS = [
    Semantics(),
    Semantics(tnorm="product", quantifier="product"),
    Semantics(tnorm="product", quantifier="minmax", iota="minmax"),
]
VAR_SETS = [(), ("x",), ("y",), ("x", "y"), ("y", "x")]
SIZES = {"x": 3, "y": 2}
PROB = st.floats(0.0, 1.0, allow_nan=False)
settings.register_profile("algebra", max_examples=60, deadline=None)
settings.load_profile("algebra")


@st.composite
def tensors(
    draw: st.DrawFn, sem: Semantics, var_sets: list[tuple[str, ...]] = VAR_SETS, sizes: dict[str, int] = SIZES
) -> PT:
    """A prob tensor over one of `var_sets` (by default x has 3 objects, y has 2), float64."""
    vars_ = draw(st.sampled_from(var_sets))
    shape = [sizes[v] for v in vars_]
    n = 1
    for s in shape:
        n *= s
    values = draw(st.lists(PROB, min_size=n, max_size=n))
    return PT(torch.tensor(values, dtype=torch.float64).reshape(shape), vars_, sem)


def in_order(t: PT, order: tuple[str, ...]) -> torch.Tensor:
    """t's data permuted to `order` (which must hold the same variables)."""
    assert set(t.vars) == set(order)
    return t.data.permute([t.vars.index(v) for v in order])


def assert_same(a: PT, b: PT) -> None:
    assert set(a.vars) == set(b.vars)
    torch.testing.assert_close(in_order(a, b.vars), b.data, atol=1e-9, rtol=0)


def in_unit(t: PT) -> bool:
    return bool(((t.data >= 0) & (t.data <= 1)).all())


semantics = st.sampled_from(SEMANTICS)


@given(st.data(), semantics)
def test_logic_ops_stay_in_unit_interval(data: st.DataObject, sem: Semantics) -> None:
    a, b = data.draw(tensors(sem)), data.draw(tensors(sem))
    for out in (
        a & b,
        a | b,
        ~a,
        a.implies(b),
        a.exists(),
        a.forall(),
        (a & b).exists("x") if "x" in (a & b).vars else ~b,
    ):
        assert out.kind == "prob" and in_unit(out)
    if a.vars:
        dist = a.iota(a.vars[0])
        assert in_unit(dist)
    for cmp in (a.count() == b.count(), a.count() > b.count(), a.count() <= 1, a != b):
        assert in_unit(cmp)


@given(st.data(), semantics)
def test_alignment_matches_elementwise_definition(data: st.DataObject, sem: Semantics) -> None:
    a, b = data.draw(tensors(sem)), data.draw(tensors(sem))
    out = a & b
    assert out.vars == a.vars + tuple(v for v in b.vars if v not in a.vars)
    for idx in itertools.product(*[range(SIZES[v]) for v in out.vars]):
        at = dict(zip(out.vars, idx, strict=True))
        va = a.data[tuple(at[v] for v in a.vars)].item()
        vb = b.data[tuple(at[v] for v in b.vars)].item()
        want = min(va, vb) if sem.tnorm == "minmax" else va * vb
        assert abs(out.data[idx].item() - want) < 1e-12


@given(st.data(), semantics)
def test_de_morgan(data: st.DataObject, sem: Semantics) -> None:
    a, b = data.draw(tensors(sem)), data.draw(tensors(sem))
    assert_same(~(a & b), ~a | ~b)
    assert_same(~(a | b), ~a & ~b)


@given(st.data(), semantics)
def test_and_or_commutative_and_associative(data: st.DataObject, sem: Semantics) -> None:
    a, b, c = data.draw(tensors(sem)), data.draw(tensors(sem)), data.draw(tensors(sem))
    assert_same(a & b, b & a)
    assert_same(a | b, b | a)
    assert_same((a & b) & c, a & (b & c))
    assert_same((a | b) | c, a | (b | c))


@given(st.data(), semantics)
def test_exists_forall_duality(data: st.DataObject, sem: Semantics) -> None:
    a = data.draw(tensors(sem, [("x",), ("x", "y"), ("y", "x")]))
    assert_same(a.exists(), ~(~a).forall())
    assert_same(a.exists("x"), ~(~a).forall("x"))
    assert_same(a.forall("x"), ~(~a).exists("x"))


@given(st.data(), semantics, st.floats(0.05, 20.0))
def test_iota_sums_to_one(data: st.DataObject, sem: Semantics, temperature: float) -> None:
    sem = Semantics(tnorm=sem.tnorm, quantifier=sem.quantifier, iota=sem.iota, iota_temperature=temperature)
    a = data.draw(tensors(sem, [("x",), ("x", "y")]))
    var = data.draw(st.sampled_from(a.vars))
    dist = a.iota(var)
    sums = dist.data.sum(a.vars.index(var))
    torch.testing.assert_close(sums, torch.ones_like(sums))
    assert in_unit(dist)


@given(st.data(), st.integers(0, 3), semantics)
def test_contract_with_one_hot_iota_selects_the_column(data: st.DataObject, k: int, sem: Semantics) -> None:
    rel = data.draw(tensors(sem, [("x", "y")], {"x": 3, "y": 4}))
    one_hot = torch.zeros(4, dtype=torch.float64)
    one_hot[k] = 1.0
    dist = PT(one_hot, ("x",), Semantics(iota="minmax")).iota()("y")
    out = rel.contract(dist)
    assert out.vars == ("x",)
    torch.testing.assert_close(out.data, rel.data[:, k])
    sharp = PT(one_hot * 0.5 + 0.25, ("y",), Semantics(iota_temperature=1e-3)).iota()
    torch.testing.assert_close(rel.contract(sharp).data, rel.data[:, k])


@given(st.data(), semantics)
def test_gradients_are_finite_through_a_program(data: st.DataObject, sem: Semantics) -> None:
    a = data.draw(tensors(sem, [("x",)]))
    r = data.draw(tensors(sem, [("x", "y")], {"x": 3, "y": 3}))
    x = a.data.clone().requires_grad_(True)
    rel = r.data.clone().requires_grad_(True)
    pa, pr = PT(x, ("x",), sem), PT(rel, ("x", "y"), sem)
    target = pa.iota()("y")
    answer = (pr.contract(target) & pa).exists() | ((pa.count() > 1) & (pr.count("y") == 1).forall())
    answer.data.backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(rel.grad).all()
    assert x.grad.abs().sum() > 0 or rel.grad.abs().sum() > 0
