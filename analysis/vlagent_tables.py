"""VLAgent's published tables for its image benchmarks (Xu et al., "A Neurosymbolic Agent System for
Compositional Visual Reasoning"), and how a run is put beside them. analysis/tables.py turns
:data:`TABLES` into its PaperTable / TableSpec entries; this module holds the numbers, the rule
that says whether a run follows the protocol behind them, the cells a run fills (its official
metric, analysis/benchmarks.py) and the layout (one row per method, one column per benchmark).

Protocols (VLAgent, Appendix C): GQA testdev balanced, 20 questions per question type (1,460);
NLVR2 the balanced test set (2,316 examples whose images could be fetched); VQAv2 val, 20 per
question type (1,300); MME existence, position and color (580 questions reported; the release's
three subsets hold 180); HC-RefLoCo 1,400 descriptions sampled from test. A run is beside these
numbers when it reads the same split with VLAgent's sampling, or the whole split (the
benchmark's own protocol); a run cut to its first ``num_samples``, another split, other MME
subsets, or another sampling stands apart, with the reason.
"""

from __future__ import annotations

from typing import Any

SOURCE = "VLAgent paper (Xu et al.), Tables 1 and 3"

_T1_COLUMNS = ["NLVR2", "GQA", "VQAv2", "MME"]
_T1 = [  # method, NLVR2, GQA, VQAv2, MME (accuracy %; None: not reported)
    ("BLIP-VQA-Capfilt (sup)", 44.8, 54.5, 81.2, 82.8),
    ("Vilt-b32 (VLM)", 46.6, 51.4, 73.6, 74.8),
    ("PaliGemma2 (VLM)", 44.4, 44.5, 46.5, 61.6),
    ("Gemma3-12B (VLM)", 73.8, 60.5, 66.5, 82.4),
    ("SmolVLM (VLM)", 51.0, 58.1, 71.0, 84.7),
    ("InternVL3 (VLM)", 50.6, 61.9, 61.4, 84.1),
    ("Idefics2 (VLM)", 50.2, 63.2, 74.0, 86.6),
    ("LLaVA-1.5-7B (VLM)", 50.3, 70.3, 71.0, 85.0),
    ("MiniCPM-V-4.5 (VLM)", 51.2, 70.8, 68.9, 85.7),
    ("Kimi-VL-A3B (VLM)", 51.0, 71.1, 75.3, 87.4),
    ("Phi-3.5 (VLM)", 64.5, 72.7, 65.5, 86.0),
    ("ViperGPT (ZS)", None, 35.5, 37.4, 58.1),
    ("VisProg (ZS)", 69.3, 54.3, 72.3, 85.3),
    ("GENOME (ZS)", None, 44.7, 60.5, 77.9),
    ("VLAgent (ZS)", 74.1, 61.9, 76.9, 88.4),
]
_T3_COLUMNS = ["Acc0.5", "Acc0.75", "Acc0.9", "mAcc"]
_T3 = [
    ("GPT-4V", 17.4, 2.6, 0.3, 5.5),
    ("GroundingGPT", 56.6, 27.2, 5.3, 29.8),
    ("Ferret 13B", 52.9, 38.5, 15.6, 35.7),
    ("KOSMOS-2", 45.3, 38.0, 20.0, 34.1),
    ("Qwen-VL", 67.9, 56.8, 34.8, 52.8),
    ("OFA-Large", 70.5, 61.6, 44.0, 58.1),
    ("SPHINX", 77.5, 61.0, 27.0, 55.4),
    ("SPHINX-1K", 80.7, 68.6, 41.1, 63.0),
    ("SPHINX-v2-1K", 84.1, 77.1, 56.2, 71.7),
    ("PixelLM 13B", 63.6, 46.6, 25.8, 44.6),
    ("LISA", 52.4, 42.1, 31.3, 41.1),
    ("PSALM", 61.7, 53.6, 40.2, 51.1),
    ("GlaMM", 66.1, 56.9, 44.2, 55.0),
    ("VLAgent", 82.6, 77.4, 63.2, 73.9),
]


def _values(columns: list[str], rows: list[tuple]) -> dict[str, dict[str, float]]:
    return {m: {c: v for c, v in zip(columns, vals, strict=True) if v is not None} for m, *vals in rows}


# key -> PaperTable fields (title, rows = the columns here, values[method][column], note, by_method)
PAPERS: dict[str, dict[str, Any]] = {
    "vlagent_table1": {
        "title": "VLAgent Table 1: image QA (accuracy %, VLAgent paper)",
        "rows": _T1_COLUMNS,
        "values": _values(_T1_COLUMNS, _T1),
        "note": "VLAgent's protocols: GQA testdev balanced, 20 per question type (1,460); NLVR2 balanced test "
        "(2,316 with images); VQAv2 val, 20 per question type (1,300), VQA accuracy; MME existence, position, "
        "color (580 reported; the release's three subsets hold 180), accuracy",
    },
    "vlagent_table3": {
        "title": "VLAgent Table 3: HC-RefLoCo (%, IoU > t, VLAgent paper)",
        "rows": _T3_COLUMNS,
        "values": _values(_T3_COLUMNS, _T3),
        "note": "VLAgent samples 1,400 descriptions from the test split; mAcc = mean of Acc over t = 0.5:0.95:0.05",
    },
}
DATASETS: dict[str, dict[str, str]] = {  # key -> {dataset: column}
    "vlagent_table1": {"nlvr2": "NLVR2", "gqa": "GQA", "vqav2": "VQAv2", "mme": "MME"},
    "vlagent_table3": {"hc_refloco": "Acc0.5"},
}

# dataset -> (the split VLAgent reports, VLAgent's sampler settings, a description of them)
PROTOCOLS: dict[str, tuple[str, dict[str, Any], str]] = {
    "gqa": ("testdev", {"per_type": 20}, "20 per question type"),
    "nlvr2": ("balanced_test1", {}, "the whole balanced test set"),
    "vqav2": ("val2014", {"per_type": 20}, "20 per question type"),
    "mme": ("test", {"families": ["existence", "position", "color"]}, "existence, position, color"),
    "hc_refloco": ("test", {"total": 1400}, "1,400 sampled"),
}
_SAMPLING_KEYS = ("per_type", "total", "families", "ids_file")


def protocol_reason(run: Any) -> str | None:
    """None when ``run`` (a RunInfo) follows VLAgent's protocol, or reads the whole split; else why not."""
    split, wanted, described = PROTOCOLS[run.dataset]
    if run.split != split:
        return f"split {run.split}; VLAgent reports the {split} split"
    if int(run.config.get("num_samples", -1)) != -1:
        return f"only the first {run.config['num_samples']} samples (num_samples), not the protocol's sample"
    sampler = {k: v for k, v in (run.config.get("sampler") or {}).items() if k in _SAMPLING_KEYS and v}
    if run.dataset == "mme" and set(sampler.get("families", [])) != set(wanted["families"]):
        return f"MME subsets {', '.join(sampler.get('families', [])) or 'all'}; VLAgent reports {described}"
    if sampler and sampler != wanted:
        return f"sampler {sampler}; VLAgent's protocol is {described} ({wanted})"
    return None


def protocol_label(run: Any) -> str:
    """How the run sampled its split, for the table cell."""
    sampler = {k: v for k, v in (run.config.get("sampler") or {}).items() if k in _SAMPLING_KEYS and v}
    if run.dataset == "mme":
        return ", ".join(sampler.get("families", [])) or "all subsets"
    return "VLAgent's sample" if sampler else "whole split"


def cells(key: str, run: Any) -> dict[str, tuple[float | None, int]]:
    """The cells ``run`` fills: its official metric (summary of analysis/benchmarks.py) under its column(s)."""
    b = run.benchmark or {}
    n = int(b.get("n", 0))
    if key == "vlagent_table3":
        return {c: (b.get(k), n) for c, k in zip(_T3_COLUMNS, ("acc@0.5", "acc@0.75", "acc@0.9", "mAcc"), strict=True)}
    return {DATASETS[key][run.dataset]: (b.get("accuracy"), n)}


def details(run: Any) -> str:
    """A line of the run's other official numbers (consistency, acc+, MME score, per-subset scores)."""
    b = run.benchmark or {}
    parts = [f"{k} {b[k]}" for k in ("consistency", "acc_plus", "score") if b.get(k) is not None]
    for name, s in (b.get("per_subset") or {}).items():
        parts.append(f"{name}: acc {s['acc']}, acc+ {s['acc_plus']}, score {s['score']}")
    for name, s in (b.get("per_answer_type") or {}).items():
        parts.append(f"{name} {s['accuracy']} (n={s['n']})")
    return f"- {run.name} ({run.dataset}, {protocol_label(run)}): {b.get('metric', '')}" + (
        "; " + "; ".join(parts) if parts else ""
    )


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v)


def format_methods(spec: Any, runs: list[Any]) -> str:
    """One row per method (the paper's), one column per benchmark or metric; the runs' row last."""
    t = spec.paper
    lines = [f"### {t.title}", "", "| method | " + " | ".join(t.rows) + " |", "|---" * (len(t.rows) + 1) + "|"]
    lines += [f"| {m} | " + " | ".join(_fmt(v.get(c)) for c in t.rows) + " |" for m, v in t.values.items()]
    ours = []
    for c in t.rows:
        got = [f"{_fmt(r.cells[c][0])} (n={r.cells[c][1]}, {protocol_label(r)})" for r in runs if c in r.cells]
        ours.append(" / ".join(got) or "-")
    label = "this run: " + ", ".join(r.name for r in runs) if runs else "this run"
    lines.append(f"| **NePTune, {label}** | " + " | ".join(ours) + " |")
    lines += ["", f"Note: {t.note}."]
    if runs:
        lines += ["", "Official metrics of the runs:"] + [details(r) for r in runs]
    return "\n".join(lines)
