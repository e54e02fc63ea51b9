"""Fewer model calls: the per-image memo, the detection cache, the counters, run order by image.

Fake backends here only record what reaches them; the memo, the cache, the counters and
the runner are the real ones.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from PIL import Image

from analysis.summary import format_summary
from neptune_core.config import load_config
from neptune_core.types import Detection, Sample
from runners import RUNNERS
from runners.ordering import group_by_image, partition_by_image
from runners.results import read_results
from vision_agents.base import Detector, MemoizedAgent, VisionAgent, score_tuples
from vision_agents.calls import counting
from vision_agents.detection_cache import CachedDetector
from vision_agents.ensemble import EnsembleAgent
from vision_agents.ensemble_detector import EnsembleDetector
from vision_agents.memo import image_fingerprint, sample_image_key
from vision_agents.oracle import SceneOracleAgent

IMAGE = Image.new("RGB", (80, 40), (10, 20, 30))
OTHER = Image.new("RGB", (80, 40), (30, 20, 10))
BOXES = [[float(10 * i), 0.0, float(10 * i + 8), 8.0] for i in range(4)]


def value(t: tuple, q: str) -> float:
    """A deterministic p(yes) per (box tuple, question), different for each."""
    return (sum(b[0] for b in t) + 3 * len(t) + len(q)) % 97 / 97.0


class TupleAgent(VisionAgent):
    """Scores each box tuple on its own; records every tuple that reaches it."""

    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def score(self, image, boxes, questions, arity):  # type: ignore[no-untyped-def]
        import itertools

        tuples = [tuple(boxes[i] for i in idx) for idx in itertools.product(range(len(boxes)), repeat=arity)]
        out, _ = self.score_tuples_with_info(image, tuples, questions, arity)
        return out.reshape(len(questions), *([len(boxes)] * arity))

    def score_tuples_with_info(self, image, tuples, questions, arity):  # type: ignore[no-untyped-def]
        self.seen += [(tuple(map(tuple, t)), q) for q in questions for t in tuples]
        return torch.tensor([[value(t, q) for t in tuples] for q in questions]), [{"n": len(tuples)} for _ in questions]

    def answer(self, image, box, question):  # type: ignore[no-untyped-def]
        self.seen.append(("answer", question))
        return "red"


class ScoreOnlyAgent(VisionAgent):
    """Implements only score (a third-party backend): tuple requests go through the default."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def score(self, image, boxes, questions, arity):  # type: ignore[no-untyped-def]
        self.calls.append(len(boxes))
        n = len(boxes)
        grid = torch.tensor([[b[0] + 2 * c[0] for c in boxes] for b in boxes]) / 100.0 if arity == 2 else None
        return torch.stack([grid if arity == 2 else torch.full((n,), 0.5) for _ in questions])

    def answer(self, image, box, question):  # type: ignore[no-untyped-def]
        return "x"


def sample(i: int, image: Image.Image = IMAGE) -> Sample:
    return Sample(id=f"s{i}", question="q", image=image)


# ---- the memo ---------------------------------------------------------------------------------
def test_memo_shares_entries_across_calls_questions_and_samples_on_one_image() -> None:
    inner = TupleAgent()
    memo = MemoizedAgent(inner, images=2)
    q = "Is it left of it?"
    with counting() as first:
        memo.begin_sample(sample(0))
        full = memo.score(IMAGE, BOXES, [q], 2)
    assert first.box_evals_by_arity[2] == 16 and first.memo_hits == 0 and len(inner.seen) == 16
    with counting() as second:
        memo.begin_sample(sample(1))  # another question about the same image
        column, infos = memo.score_tuples_with_info(IMAGE, [(b, BOXES[2]) for b in BOXES], [q], 2)
        again = memo.score(IMAGE, BOXES, [q], 2)
    assert second.box_evals == 0 and second.memo_hits == 4 + 16 and len(inner.seen) == 16
    assert torch.equal(column[0], full[0, :, 2]) and torch.equal(again, full)
    assert infos == [{}]  # the info of the call that produced the entries (this fake's score_with_info has none)
    with counting() as third:  # a new question: only it reaches the model; a partial request forwards only the rest
        _, infos = memo.score_tuples_with_info(IMAGE, [(BOXES[0], BOXES[1])], ["Is it red?"], 2)
        out = memo.score(IMAGE, BOXES[:2], ["Is it red?", q], 2)
    assert infos == [{"n": 1}]
    assert third.box_evals_by_arity[2] == 1 + 3 and third.memo_hits == 1 + 4
    assert inner.seen[-3:] == [(tuple(map(tuple, t)), "Is it red?") for t in
                               [(BOXES[0], BOXES[0]), (BOXES[1], BOXES[0]), (BOXES[1], BOXES[1])]]  # fmt: skip
    assert torch.equal(out[1], full[0, :2, :2])
    with counting() as answers:
        memo.answer(IMAGE, BOXES[0], "What colour?")
        memo.answer(IMAGE, BOXES[0], "What colour?")
    assert answers.queries == 1 and answers.memo_hits == 1


class GradAgent(TupleAgent):
    """A TupleAgent with one trainable weight: float64 results that carry gradients while autograd is on."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)

    def score_tuples_with_info(self, image, tuples, questions, arity):  # type: ignore[no-untyped-def]
        out, infos = super().score_tuples_with_info(image, tuples, questions, arity)
        return out.double() * self.w, infos


def test_memo_keeps_the_backends_dtype_and_mixes_kept_values_with_fresh_ones_that_carry_gradients() -> None:
    inner = GradAgent()
    memo = MemoizedAgent(inner, images=2)
    q = "Is it red?"
    expected = torch.tensor([[value((b,), q) for b in BOXES]]).double()  # what the backend computes
    memo.begin_sample(sample(0))
    with torch.no_grad():  # kept as plain values, given back in the backend's dtype
        plain = memo.score(IMAGE, BOXES[:2], [q], 1)
        again = memo.score(IMAGE, BOXES[:2], [q], 1)
    assert plain.dtype == again.dtype == torch.float64 and not plain.requires_grad
    assert torch.equal(plain, expected[:, :2]) and torch.equal(again, plain) and len(inner.seen) == 2
    with counting() as calls:  # autograd on: two entries from the memo, two fresh ones carrying gradients
        out = memo.score(IMAGE, BOXES, [q], 1)
    assert calls.box_evals == 2 and calls.memo_hits == 2 and len(inner.seen) == 4
    assert out.dtype == torch.float64 and out.requires_grad and torch.equal(out.detach(), expected)
    out.sum().backward()
    assert inner.w.grad is not None and float(inner.w.grad) == pytest.approx(float(expected[0, 2:].sum()))


def test_memo_is_bounded_and_per_sample_where_it_must_be() -> None:
    inner = TupleAgent()
    memo = MemoizedAgent(inner, images=1)
    memo.score(IMAGE, BOXES, ["q?"], 1)
    memo.score(OTHER, BOXES, ["q?"], 1)  # evicts IMAGE (capacity 1)
    memo.score(IMAGE, BOXES, ["q?"], 1)
    assert len(inner.seen) == 12

    class ReadsSample(TupleAgent):
        def begin_sample(self, sample: Sample) -> None:  # answers may depend on the sample
            self.current = sample.id

    reader = ReadsSample()
    memo = MemoizedAgent(reader, images=8)
    assert not memo.shares_across_samples
    for i in range(2):
        memo.begin_sample(sample(i))
        memo.score(IMAGE, BOXES, ["q?"], 1)
        memo.score(IMAGE, BOXES, ["q?"], 1)
    assert len(reader.seen) == 8  # repeated within a sample only

    class Trainable(TupleAgent):
        def score_tuples_with_info(self, image, tuples, questions, arity):  # type: ignore[no-untyped-def]
            out, infos = super().score_tuples_with_info(image, tuples, questions, arity)
            return out.requires_grad_(), infos

        def score(self, image, boxes, questions, arity):  # type: ignore[no-untyped-def]
            return super().score(image, boxes, questions, arity)

    trainable = Trainable()
    memo = MemoizedAgent(trainable)
    for i in range(2):
        memo.begin_sample(sample(i))
        memo.score(IMAGE, BOXES, ["q?"], 1).sum().backward()
        memo.score(IMAGE, BOXES, ["q?"], 1)
    assert len(trainable.seen) == 8  # results with gradients are never shared across samples


def test_tuple_requests_of_a_score_only_backend_count_what_it_computed() -> None:
    agent = ScoreOnlyAgent()
    memo = MemoizedAgent(agent)
    column = [(b, BOXES[1]) for b in BOXES]
    with counting() as calls:
        out, _ = memo.score_tuples_with_info(IMAGE, column, ["q?"], 2)
    grid = agent.score(IMAGE, BOXES, ["q?"], 2)
    assert torch.equal(out[0], grid[0, :, 1])
    assert calls.box_evals_by_arity[2] == 16  # 4 asked for, 12 more computed by score() on the 4 boxes


def test_a_subclass_that_changes_score_is_not_bypassed() -> None:
    class Mirror(SceneOracleAgent):
        def score(self, image, boxes, questions, arity):  # type: ignore[no-untyped-def]
            return 1 - super().score(image, boxes, questions, arity)

    calls: list = []

    class Spy(Mirror):
        def score_with_info(self, image, boxes, questions, arity):  # type: ignore[no-untyped-def]
            calls.append(len(boxes))
            return super().score_with_info(image, boxes, questions, arity)

    scene = {"objects": [{"color": "red", "shape": "cube", "size": "large", "material": "metal"}] * 2,
             "relationships": {"left": [[1], []], "right": [[], [0]], "front": [[], []], "behind": [[], []]}}  # fmt: skip
    s = Sample(id="m", question="q", image=IMAGE, boxes=BOXES[:2], scene=scene)
    spy = Spy()
    spy.begin_sample(s)
    out, _ = score_tuples(spy, IMAGE, [(BOXES[0], BOXES[1])], ["Is the object in the red box left of the object in the green box?"], 2)  # fmt: skip
    assert calls and float(out[0, 0]) == 1 - float(SceneOracleAgent.score(spy, IMAGE, BOXES[:2], ["Is the object in the red box left of the object in the green box?"], 2)[0, 0, 1])  # fmt: skip


# ---- the detection cache ------------------------------------------------------------------------
class CountingDetector(Detector):
    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image, object_names):  # type: ignore[no-untyped-def]
        self.calls += 1
        return Detection([[1.0, 1.0, 5.0, 5.0 + len(object_names)]], [0.9], ["thing"])


def test_detection_cache_per_image_names_and_settings() -> None:
    inner = CountingDetector()
    cached = CachedDetector(inner, images=1, settings=("dino", 0.35))
    with counting() as calls:
        a = cached.detect(IMAGE, ["cube"])
        a.boxes[0][0] = 99.0  # a caller changing its copy changes nothing cached
        b = cached.detect(IMAGE, ["cube"])
        cached.detect(IMAGE, ["cube", "ball"])
        cached.detect(OTHER, ["cube"])  # evicts IMAGE
        cached.detect(IMAGE, ["cube"])
    assert b.boxes == [[1.0, 1.0, 5.0, 6.0]] and inner.calls == 4 == calls.detections
    off = CachedDetector(CountingDetector(), images=0)
    off.detect(IMAGE, ["cube"])
    off.detect(IMAGE, ["cube"])
    assert off.inner.calls == 2

    class ReadsSample(CountingDetector):
        def begin_sample(self, sample: Sample) -> None:
            self.gold = sample.answer

    reader = CachedDetector(ReadsSample())
    assert not reader.cacheable
    reader.detect(IMAGE, ["cube"])
    reader.detect(IMAGE, ["cube"])
    assert reader.inner.calls == 2


def test_ensemble_detector_counts_each_member() -> None:
    members = [(n, CountingDetector(), 1.0) for n in ("a", "b", "c")]
    cached = CachedDetector(EnsembleDetector(members))
    with counting() as calls:
        cached.detect(IMAGE, ["cube"])
        cached.detect(IMAGE, ["cube"])
    assert calls.detections == 3 and all(det.calls == 1 for _, det, _ in members)


def test_ensemble_agent_counts_at_its_members() -> None:
    members = [(n, TupleAgent(), 1.0) for n in ("a", "b")]
    memo = MemoizedAgent(EnsembleAgent(members))
    with counting() as calls:
        memo.score(IMAGE, BOXES, ["q?"], 1)
        memo.score(IMAGE, BOXES, ["q?"], 1)
        out, infos = memo.score_tuples_with_info(IMAGE, [(BOXES[0], BOXES[2])], ["r?"], 2)
    assert calls.box_evals_by_arity == {0: 0, 1: 8, 2: 2} and calls.memo_hits == 8
    assert infos[0]["members"] == {"a": [round(value((BOXES[0], BOXES[2]), "r?"), 4)] * 1,
                                   "b": [round(value((BOXES[0], BOXES[2]), "r?"), 4)]}  # fmt: skip


# ---- run order -----------------------------------------------------------------------------------
def test_group_and_partition_by_image() -> None:
    images = [Image.new("RGB", (8, 8), (i, 0, 0)) for i in range(5)]
    samples = [Sample(id=f"{i}", question="q", image=images[i % 5]) for i in range(23)]
    samples.append(Sample(id="p", question="q", image_path="/data/a.png"))
    random.Random(0).shuffle(samples)
    grouped = group_by_image(samples)
    keys = [sample_image_key(s) for s in grouped]
    assert sorted(s.id for s in grouped) == sorted(s.id for s in samples)
    assert all(keys.index(k) + keys.count(k) - 1 == max(i for i, x in enumerate(keys) if x == k) for k in keys)
    parts = [partition_by_image(samples, k, 3) for k in range(3)]
    assert sorted(s.id for p in parts for s in p) == sorted(s.id for s in samples)
    assert [s.id for p in parts for s in p] == [s.id for s in grouped]  # contiguous shares of the grouped order
    assert max(map(len, parts)) - min(map(len, parts)) <= 1  # balanced, even when one image has most questions
    owners: dict[str, set[int]] = {}
    for k, p in enumerate(parts):
        for s in p:
            owners.setdefault(sample_image_key(s), set()).add(k)
    assert sum(len(o) > 1 for o in owners.values()) <= 2  # at most workers - 1 images are split
    assert parts == [partition_by_image(samples, k, 3) for k in range(3)]  # deterministic
    one_image = [Sample(id=f"{i}", question="q", image=images[0]) for i in range(10)]
    assert [len(partition_by_image(one_image, k, 2)) for k in range(2)] == [5, 5]
    assert image_fingerprint(images[1]) == image_fingerprint(Image.new("RGB", (8, 8), (1, 0, 0)))


def test_calls_section_enters_the_hash_only_where_results_can_change() -> None:
    plain = load_config("configs/clevr-mini-oracle.json")
    same = ("calls.memo_images", "0"), ("calls.lazy_relations", "false"), ("calls.group_by_image", "false")
    for key, val in same:
        assert load_config("configs/clevr-mini-oracle.json", {key: val}).config_hash() == plain.config_hash()
    for key, val in (("calls.mass_threshold", "0.05"), ("calls.tensor_marking", "false")):
        assert load_config("configs/clevr-mini-oracle.json", {key: val}).config_hash() != plain.config_hash()
    with pytest.raises(Exception, match="mass_threshold"):
        load_config(None, {"calls.mass_threshold": "1.5"})


# ---- a run end to end ------------------------------------------------------------------------------
def _run(tmp_path: Path, name: str, **overrides: str) -> tuple[dict, list[dict]]:
    cfg = load_config("configs/clevr-mini-oracle.json", {"synthetic.num_scenes": "6", "report": "false", **overrides})
    run_dir = tmp_path / name
    run_dir.mkdir()
    summary = RUNNERS.get(cfg.dataset)(cfg).run(run_dir)
    rows, dropped = read_results(run_dir / "results.jsonl")
    assert dropped == 0 and len(rows) == 60
    return summary, rows


def test_run_records_model_calls_and_lazy_relations_change_no_answer(tmp_path: Path) -> None:
    lazy, lazy_rows = _run(tmp_path, "lazy")
    eager, eager_rows = _run(
        tmp_path,
        "eager",
        **{"calls.lazy_relations": "false", "calls.memo_images": "0", "calls.group_by_image": "false"},
    )
    assert lazy["accuracy"] == eager["accuracy"] == 100.0
    by_id = {r["id"]: r for r in eager_rows}
    for row in lazy_rows:
        assert row["pred"] == by_id[row["id"]]["pred"]
        calls = row["model_calls"]
        assert set(calls) == {"box_evals", "by_arity", "queries", "detections", "memo_hits"}
        assert calls["box_evals"] == sum(calls["by_arity"].values()) and calls["detections"] == 1
    per_lazy, per_eager = lazy["model_calls"]["per_question"], eager["model_calls"]["per_question"]
    assert per_lazy["box_evals"] < 0.5 * per_eager["box_evals"]
    assert per_lazy["by_arity"]["2"] < 0.5 * per_eager["by_arity"]["2"]
    assert per_eager["memo_hits"] < per_lazy["memo_hits"]
    rel = lazy["model_calls"]["lazy_relations"]
    assert 0 < rel["evaluated_pairs"] < rel["pairs"] and rel["max_dropped_mass"] == 0.0
    assert "lazy_relations" not in eager["model_calls"]
    assert "model calls per question" in format_summary(lazy)
    # the totals are the sums of the rows
    assert lazy["model_calls"]["total"]["box_evals"] == sum(r["model_calls"]["box_evals"] for r in lazy_rows)


def test_a_backend_with_trainable_weights_shares_the_memo_between_an_images_questions(tmp_path: Path) -> None:
    """The classic agent's heads are torch modules: outside training its scores must not carry
    gradients, or the memo keeps them per sample and an image's questions share nothing."""
    summaries = {}
    for name, images in (("shared", "8"), ("per_sample", "0")):
        cfg = load_config("configs/demo.json", {"num_samples": "40", "report": "false", "calls.memo_images": images})
        run_dir = tmp_path / name
        run_dir.mkdir()
        summaries[name] = RUNNERS.get(cfg.dataset)(cfg).run(run_dir)
    shared, per_sample = (summaries[k]["model_calls"]["per_question"] for k in ("shared", "per_sample"))
    assert summaries["shared"]["accuracy"] == summaries["per_sample"]["accuracy"]
    assert shared["box_evals"] < 0.7 * per_sample["box_evals"], (shared, per_sample)
    assert shared["memo_hits"] > per_sample["memo_hits"]
