"""The official metrics of VLAgent's image benchmarks (analysis/benchmarks.py) against cases
computed by hand: VQAv2 accuracy with 0 to 4 agreeing annotators and the answer normalisation,
GQA exact match, NLVR2 accuracy and consistency, MME acc / acc+ / score, HC-RefLoCo Acc@t and mAcc."""

from __future__ import annotations

from typing import Any

import pytest

from analysis.benchmarks import (
    benchmark_summary,
    exact_match,
    iou_accuracies,
    mme_label,
    nlvr2_label,
    vqa_accuracy,
    vqa_matches,
    vqa_normalize,
)

OTHERS = ["cat", "dog", "bird", "cow", "horse", "sheep", "goat", "pig", "duck", "fox"]


def answers_with(k: int, answer: str = "red") -> list[str]:
    """Ten human answers, ``k`` of them ``answer``, the rest all different from it and from each other."""
    return [answer] * k + OTHERS[: 10 - k]


@pytest.mark.parametrize(
    ("agreeing", "expected"),
    # each annotator left out in turn: the k who gave it see k-1 others, the 10-k others see k;
    # acc = (k * min((k-1)/3, 1) + (10-k) * min(k/3, 1)) / 10
    [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)],
)
def test_vqa_accuracy_by_number_of_agreeing_annotators(agreeing: int, expected: float) -> None:
    assert vqa_accuracy("red", answers_with(agreeing)) == pytest.approx(expected)
    assert vqa_matches("red", answers_with(agreeing)) == agreeing


@pytest.mark.parametrize(
    ("prediction", "normalised"),
    [
        ("Two.", "2"),  # lower case, the period goes, number word -> digit
        ("the dog", "dog"),  # articles go
        ("A Red Car", "red car"),
        ("dont", "don't"),  # contractions are restored
        ("isnt it", "isn't it"),
        ("t-shirt", "t shirt"),  # a mark inside a word becomes a space
        ("red, white", "red white"),  # a mark next to a space is deleted
        ("1,000", "1000"),  # a 1,000-style comma: every mark is deleted
        ("3.5", "3.5"),  # a period before a digit stays
        ("  yes\n", "yes"),
        ("none", "0"),
    ],
)
def test_vqa_answer_normalisation(prediction: str, normalised: str) -> None:
    assert vqa_normalize(prediction) == normalised


def test_vqa_accuracy_normalises_the_prediction_and_disagreeing_human_answers_as_the_script_does() -> None:
    assert vqa_accuracy("Two.", ["2"] * 3 + OTHERS[:7]) == pytest.approx(0.9)
    # humans who disagree get the punctuation step: "t-shirt" -> "t shirt" matches the prediction's form
    assert vqa_accuracy("t-shirt", ["t-shirt"] * 3 + ["shirt"] * 7) == pytest.approx(0.9)
    # humans who all agree are compared as written (the script's quirk)
    assert vqa_accuracy("t-shirt", ["t-shirt"] * 10) == 0.0
    assert vqa_accuracy("t shirt", ["t shirt"] * 10) == 1.0
    with pytest.raises(ValueError, match="human answers"):
        vqa_accuracy("red", [])


def test_gqa_exact_match_after_normalisation() -> None:
    assert exact_match("Yes", "yes") and exact_match("the table", "table") and exact_match("two", "2")
    assert not exact_match("tables", "table")  # no stemming: the gold word or nothing
    assert not exact_match("left", "right")


def _row(rid: str, family: str, correct: bool, gold: Any = "x", **metric: Any) -> dict[str, Any]:
    return {"id": rid, "family": family, "correct": correct, "gold": gold, "error": None, "metric": metric}


def test_nlvr2_labels_accuracy_and_consistency() -> None:
    assert [nlvr2_label(p) for p in ("yes", "no", "True", "false", "blue")] == [
        "True",
        "False",
        "True",
        "False",
        "blue",
    ]
    rows = [  # sentence s1: both pairs right; s2: one of two; s3: its only pair wrong
        _row("a", "true", True, benchmark="nlvr2", sentence="s1"),
        _row("b", "false", True, benchmark="nlvr2", sentence="s1"),
        _row("c", "true", True, benchmark="nlvr2", sentence="s2"),
        _row("d", "true", False, benchmark="nlvr2", sentence="s2"),
        _row("e", "false", False, benchmark="nlvr2", sentence="s3"),
    ]
    b = benchmark_summary(rows)
    assert b is not None and (b["name"], b["accuracy"], b["consistency"], b["sentences"]) == ("nlvr2", 60.0, 33.33, 3)


@pytest.mark.parametrize(
    ("answer", "label"),
    [("yes", "yes"), ("No", "no"), ("Yes, there is.", "yes"), ("no.", "no"), ("not sure", "no"), ("maybe", "other")],
)
def test_mme_reads_answers_as_its_tool_does(answer: str, label: str) -> None:
    assert mme_label(answer) == label  # "not sure" reads as no: its first 4 characters hold "no"


def test_mme_acc_acc_plus_and_score() -> None:
    rows = [  # existence: image A both right, image B one right; color: image C both wrong
        _row("existence/A#0", "existence", True, benchmark="mme", image="existence/A"),
        _row("existence/A#1", "existence", True, benchmark="mme", image="existence/A"),
        _row("existence/B#0", "existence", True, benchmark="mme", image="existence/B"),
        _row("existence/B#1", "existence", False, benchmark="mme", image="existence/B"),
        _row("color/C#0", "color", False, benchmark="mme", image="color/C"),
        _row("color/C#1", "color", False, benchmark="mme", image="color/C"),
    ]
    b = benchmark_summary(rows)
    assert b is not None
    assert b["per_subset"]["existence"] == {
        "acc": 75.0, "acc_plus": 50.0, "score": 125.0, "questions": 4, "images": 2, "incomplete_pairs": 0
    }  # fmt: skip
    assert b["per_subset"]["color"]["score"] == 0.0
    assert (b["accuracy"], b["acc_plus"], b["score"], b["n"]) == (50.0, 33.33, 125.0, 6)
    rows[1]["error"] = {"type": "AgentError"}  # an errored question counts as wrong, also for acc+
    assert benchmark_summary(rows)["per_subset"]["existence"]["acc_plus"] == 0.0  # type: ignore[index]


def test_hc_refloco_acc_at_thresholds_and_macc() -> None:
    ious = [0.95, 0.8, 0.6, 0.5, 0.3]
    # IoU > t counts (0.5 itself is not above 0.5); over t = 0.5, 0.55, ..., 0.95 the counts are
    # 3, 3, 2, 2, 2, 2, 1, 1, 1, 0 = 17 of 50
    assert iou_accuracies(ious) == {"acc@0.5": 60.0, "acc@0.75": 40.0, "acc@0.9": 20.0, "mAcc": 34.0}
    rows = [_row(str(k), "Appearance", v > 0.5, gold=[0, 0, 1, 1], benchmark="hc_refloco", iou=v) for k, v in
            enumerate(ious)]  # fmt: skip
    b = benchmark_summary(rows)
    assert b is not None and (b["acc@0.5"], b["mAcc"], b["accuracy"], b["n"]) == (60.0, 34.0, 60.0, 5)


def test_vqav2_and_gqa_summaries_and_rows_of_other_tasks() -> None:
    rows = [
        _row("1", "other", True, benchmark="vqav2", vqa_accuracy=1.0),
        _row("2", "other", False, benchmark="vqav2", vqa_accuracy=0.6),
        _row("3", "yes/no", False, benchmark="vqav2", vqa_accuracy=0.0),
        {"id": "4", "family": "number", "correct": False, "gold": "2", "error": {"type": "X"}},  # no metric: 0
    ]
    b = benchmark_summary(rows)
    assert b is not None and b["accuracy"] == 40.0 and b["per_answer_type"]["other"] == {"accuracy": 80.0, "n": 2}
    gqa = benchmark_summary([_row("1", "verify", True, benchmark="gqa"), _row("2", "query", False, benchmark="gqa")])
    assert gqa is not None and gqa["accuracy"] == 50.0 and gqa["per_type"]["verify"]["accuracy"] == 100.0
    assert benchmark_summary([{"id": "1", "correct": True, "gold": "x"}]) is None  # not a benchmark run
