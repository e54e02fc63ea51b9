"""The official metrics of VLAgent's image benchmarks, each defined once, here:

- **VQAv2** accuracy (:func:`vqa_accuracy`): for the ten human answers, each annotator left out in
  turn, min(#other annotators who gave the prediction / 3, 1), averaged over the ten; the
  prediction normalised as the official evaluation script does (:func:`vqa_normalize`:
  punctuation, periods, number words, articles, contractions); the human answers only get the
  punctuation step, and only when they disagree, as in that script. 1, 2, 3, 4+ agreeing
  annotators give 0.3, 0.6, 0.9, 1.0.
- **GQA** accuracy: exact match after :func:`vqa_normalize` of both sides (:func:`exact_match`).
- **NLVR2** accuracy (the label, case-insensitive, as the release's metrics script) and
  consistency (the share of sentences whose every image pair is right).
- **MME**: per subset, acc (questions right) and acc+ (images with both questions right), the
  subset's score = 100 acc + 100 acc+, the total score the sum over subsets; a prediction is read
  as the official tool does (:func:`mme_label`: yes / no / other).
- **HC-RefLoCo**: Acc@t = share of samples with IoU(predicted box, gold box) > t (strictly, as
  the benchmark's evaluator), t = 0.5, 0.75, 0.9, and mAcc, the mean of Acc@t over t = 0.5,
  0.55, ..., 0.95.

Runners (runners/run_benchmarks.py) write what a metric needs on each row's ``metric`` field
(``{"benchmark": name, ...}``, errors included: an errored sample counts as wrong, IoU 0);
:func:`benchmark_summary` turns a run's rows into the official numbers (summary.json's
``benchmark``, analysis/tables.py). Add a benchmark: a function ``rows -> dict`` in
:data:`SUMMARIES`.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

# ---- VQA answer normalisation (the official VQA evaluation script) --------------------------------
_PUNCT = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")  # as written there: a period not followed by a digit
_NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                 "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}  # fmt: skip
_ARTICLES = frozenset({"a", "an", "the"})
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've",
    "someone'dve": "someone'd've", "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
    "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've",
    "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's",
    "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd",
    "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're", "youve": "you've",
}  # fmt: skip


def vqa_punctuation(text: str) -> str:
    """The script's punctuation step: a mark next to a space (or any text with a 1,000-style comma)
    is deleted, otherwise replaced by a space; then periods not followed by a digit go."""
    out = text
    strip_all = _COMMA_STRIP.search(text) is not None
    for p in _PUNCT:
        out = out.replace(p, "") if (p + " " in text or " " + p in text or strip_all) else out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, count=32)  # the script passes re.UNICODE (= 32) as sub's count


def vqa_digits_articles(text: str) -> str:
    """The script's word step: lower case, number words to digits, no articles, contractions restored."""
    words = [_NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


def vqa_normalize(answer: str) -> str:
    """A prediction as the official VQA evaluation compares it."""
    text = str(answer).replace("\n", " ").replace("\t", " ").strip()
    return vqa_digits_articles(vqa_punctuation(text))


def _human_answers(answers: Sequence[str]) -> list[str]:
    gts = [str(a) for a in answers]
    return [vqa_punctuation(a) for a in gts] if len(set(gts)) > 1 else gts


def vqa_matches(pred: str, answers: Sequence[str]) -> int:
    """How many of the human answers equal the normalised prediction."""
    res = vqa_normalize(pred)
    return sum(1 for a in _human_answers(answers) if a == res)


def vqa_accuracy(pred: str, answers: Sequence[str]) -> float:
    """VQAv2 accuracy of one prediction against its (ten) human answers, in [0, 1]."""
    if not answers:
        raise ValueError("VQA accuracy needs the human answers")
    res = vqa_normalize(pred)
    gts = _human_answers(answers)
    accs = [min(1.0, sum(1 for j, a in enumerate(gts) if j != i and a == res) / 3.0) for i in range(len(gts))]
    return sum(accs) / len(accs)


def exact_match(pred: str, gold: str) -> bool:
    """GQA: the normalised prediction equals the normalised gold answer."""
    return vqa_normalize(pred) == vqa_normalize(gold)


# ---- yes/no readings --------------------------------------------------------------------------------
def nlvr2_label(pred: str) -> str:
    """ "True" / "False" from a program's answer (yes/no, true/false); anything else unchanged."""
    text = str(pred).strip().lower()
    return {"yes": "True", "true": "True", "no": "False", "false": "False"}.get(text, str(pred))


def mme_label(pred: str) -> str:
    """The MME tool's reading of an answer: "yes", "no", or "other" (a yes/no in its first 4 characters)."""
    text = str(pred).lower()
    if text in ("yes", "no"):
        return text
    head = text[:4]
    return "yes" if "yes" in head else "no" if "no" in head else "other"


# ---- HC-RefLoCo -------------------------------------------------------------------------------------
IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))  # 0.5, 0.55, ..., 0.95
SHOWN_THRESHOLDS = (0.5, 0.75, 0.9)


def iou_accuracies(ious: Sequence[float]) -> dict[str, float]:
    """Acc@0.5, Acc@0.75, Acc@0.9 and mAcc (mean of Acc@t, t = 0.5:0.95:0.05), in %; IoU > t counts."""
    if not ious:
        raise ValueError("no IoU values")
    acc = {t: sum(1 for v in ious if v > t) / len(ious) for t in IOU_THRESHOLDS}
    out = {f"acc@{t:g}": round(100.0 * acc[t], 2) for t in SHOWN_THRESHOLDS}
    out["mAcc"] = round(100.0 * statistics.fmean(acc.values()), 2)
    return out


# ---- a run's rows -> the official numbers -----------------------------------------------------------
def _pct(num: float, den: int) -> float | None:
    return round(100.0 * num / den, 2) if den else None


def _labelled(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("gold") is not None]


def _right(row: dict[str, Any]) -> bool:
    return row.get("correct") is True and not row.get("error")


def _accuracy_by(rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], str]) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    return {k: {"accuracy": _pct(sum(map(_right, rs)), len(rs)), "n": len(rs)} for k, rs in sorted(groups.items())}


def gqa_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    rows = _labelled(rows)
    return {
        "accuracy": _pct(sum(map(_right, rows)), len(rows)),
        "n": len(rows),
        "per_type": _accuracy_by(rows, lambda r: str(r.get("family"))),
        "metric": "exact match after VQA answer normalisation",
    }


def nlvr2_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    rows = _labelled(rows)
    sentences: dict[str, bool] = {}
    for r in rows:
        key = str((r.get("metric") or {}).get("sentence", r["id"]))
        sentences[key] = sentences.get(key, True) and _right(r)
    return {
        "accuracy": _pct(sum(map(_right, rows)), len(rows)),
        "consistency": _pct(sum(sentences.values()), len(sentences)),
        "n": len(rows),
        "sentences": len(sentences),
        "metric": "label accuracy (True/False); consistency over the pairs of each sentence",
    }


def vqav2_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    rows = _labelled(rows)

    def score(r: dict[str, Any]) -> float:
        return float((r.get("metric") or {}).get("vqa_accuracy", 0.0))

    by_type: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        by_type[str(r.get("family"))].append(score(r))
    return {
        "accuracy": _pct(sum(map(score, rows)), len(rows)),
        "n": len(rows),
        "per_answer_type": {k: {"accuracy": _pct(sum(v), len(v)), "n": len(v)} for k, v in sorted(by_type.items())},
        "metric": "VQA accuracy: min(#humans/3, 1) averaged over the 10 leave-one-out annotator subsets",
    }


def mme_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    rows = _labelled(rows)
    subsets: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        image = str((r.get("metric") or {}).get("image", r["id"]))
        subsets[str(r.get("family"))][image].append(_right(r))
    per_subset, total, questions, right = {}, 0.0, 0, 0
    for name, images in sorted(subsets.items()):
        answers = [a for qs in images.values() for a in qs]
        acc = sum(answers) / len(answers)
        acc_plus = sum(all(qs) for qs in images.values()) / len(images)
        per_subset[name] = {
            "acc": round(100 * acc, 2),
            "acc_plus": round(100 * acc_plus, 2),
            "score": round(100 * acc + 100 * acc_plus, 2),
            "questions": len(answers),
            "images": len(images),
            "incomplete_pairs": sum(1 for qs in images.values() if len(qs) != 2),
        }
        total += 100 * acc + 100 * acc_plus
        questions, right = questions + len(answers), right + sum(answers)
    all_images = [qs for images in subsets.values() for qs in images.values()]
    return {
        "accuracy": _pct(right, questions),
        "acc_plus": _pct(sum(all(qs) for qs in all_images), len(all_images)),
        "score": round(total, 2),
        "n": questions,
        "per_subset": per_subset,
        "metric": "MME: acc and acc+ per subset, score = 100 acc + 100 acc+ summed over subsets",
    }


def hc_refloco_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    rows = _labelled(rows)
    ious = [float((r.get("metric") or {}).get("iou", 0.0)) for r in rows]
    out: dict[str, Any] = iou_accuracies(ious) if ious else {}
    return {**out, "accuracy": out.get("acc@0.5"), "n": len(rows), "metric": "Acc@IoU>t and mAcc (t = 0.5:0.95:0.05)"}


SUMMARIES: dict[str, Callable[[list[dict[str, Any]]], dict[str, Any]]] = {
    "gqa": gqa_summary,
    "nlvr2": nlvr2_summary,
    "vqav2": vqav2_summary,
    "mme": mme_summary,
    "hc_refloco": hc_refloco_summary,
}


def benchmark_of(rows: list[dict[str, Any]]) -> str | None:
    """The benchmark the rows' ``metric`` fields name (None: rows of no benchmark here)."""
    return next((str(r["metric"]["benchmark"]) for r in rows if isinstance(r.get("metric"), dict)
                 and r["metric"].get("benchmark") in SUMMARIES), None)  # fmt: skip


def benchmark_summary(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The official numbers of a run's rows ({"name", "accuracy", "n", ...}), or None for other tasks."""
    name = benchmark_of(rows)
    if name is None or not _labelled(rows):
        return None
    return {"name": name, **SUMMARIES[name](rows)}


def format_benchmark(b: dict[str, Any]) -> str:
    """One console line of a benchmark summary."""
    keys = ("accuracy", "consistency", "acc_plus", "score", "acc@0.5", "acc@0.75", "acc@0.9", "mAcc")
    values = ", ".join(f"{k} {b[k]}" for k in keys if b.get(k) is not None)
    return f"{b['name']} (official metric, n={b['n']}): {values}"
