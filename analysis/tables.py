"""The paper's result tables with a run's numbers beside the published ones, only where they
measure the same thing.

    python analysis/tables.py experiments/<run> [experiments/<other run> ...]
    python analysis/tables.py --help

Every run is first described (:class:`RunInfo`): dataset and split, real or synthetic data,
perception by models or by an oracle (scene annotations, ground-truth boxes), where its
programs came from, where its accuracy comes from (evaluation.json, exact match + LLM judge,
when ``--evaluate`` has been run; else the ``correct`` field of results.jsonl: exact match
/ IoU) and how many of its samples failed. A run goes beside a paper number only when
:meth:`TableSpec.comparable` finds no reason against it: the table's dataset, the paper's
split, real data, model perception. Every other run is listed in a separate section,
"Runs not comparable with a paper table", with the reason and its own accuracies.

Training runs (fine-tuning through programs) also get a before/after table beside Tables 6 and 7's
fine-tuning rows (:func:`format_training_tables`).

Published numbers: :data:`PAPER`, copied from the NePTune paper (Kamali & Kordjamshidi,
ICLR 2026, camera-ready tables), and VLAgent's Tables 1 and 3 (GQA, NLVR2, VQAv2, MME,
HC-RefLoCo: analysis/vlagent_tables.py, filled from each run's official metric,
analysis/benchmarks.py). Add a table: one :class:`PaperTable` in :data:`PAPER` and
one :class:`TableSpec` in :data:`TABLES` (which datasets feed it, which split the paper
used, and optionally its own ``comparable`` rule, ``cells`` or ``format`` function); nothing else changes.

``--ablation`` prints the verifier/ensemble ablation in VLAgent's Table 4 layout instead
(see :func:`format_ablation`, at the end of this file).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis import vlagent_tables  # noqa: E402

SOURCE = (
    f"NePTune paper (Kamali & Kordjamshidi, ICLR 2026), camera-ready tables; VLAgent tables: {vlagent_tables.SOURCE}"
)


@dataclass
class PaperTable:
    """Published accuracies: ``values[method][row]``; ``rows`` in display order."""

    title: str
    rows: list[str]
    values: dict[str, dict[str, float | str]]
    note: str = ""
    by_method: bool = False  # True: one row per method (single-number tables)


_C3 = ["overall", "exist", "query", "compare attr.", "count", "compare number"]
PAPER: dict[str, PaperTable] = {
    "table3": PaperTable(
        "Table 3: CLEVR (accuracy %)",
        _C3,
        {
            "NePTune (InternVL2.5-8B)": dict(zip(_C3, [92.65, 93.19, 96.81, 91.94, 87.10, 92.57], strict=True)),
            "InternVL2.5-8B (end-to-end)": {"overall": 90.25},
            "ViperGPT": {"overall": 36.05},
            "NeSyCoCo (trained)": {"overall": 99.68},
            "LEFT (trained)": {"overall": 99.50},
        },
    ),
    "table4": PaperTable(
        "Table 4: CLEVR-Transfer (accuracy %)",
        ["Ref", "Puzzles", "RPM"],
        {
            "NePTune": {"Ref": 91, "Puzzles": 60, "RPM": 80},
            "NePTune + GT programs": {"Ref": 99, "Puzzles": 65, "RPM": 99},
            "LEFT": {"Ref": 94, "Puzzles": 85, "RPM": 87},
            "NeSyCoCo": {"Ref": 94, "Puzzles": 94, "RPM": 74},
            "InternVL2.5-8B": {"Ref": 27, "Puzzles": 52, "RPM": 47},
            "VisProg": {"Ref": 35, "Puzzles": 27, "RPM": 51},
            "ViperGPT": {"Ref": 8, "Puzzles": 34, "RPM": 4},
        },
        note="an earlier version of the paper reported NePTune 91 / 81 / 80 and 99 / 85 / 97",
    ),
    "table5": PaperTable(
        "Table 5: CLEVR-Humans (accuracy %)",
        ["accuracy"],
        {
            m: {"accuracy": v}
            for m, v in [
                ("NePTune", 87.67),
                ("InternVL2.5-8B", 85.95),
                ("Qwen2-VL-7B", 84.12),
                ("MDETR", 81.73),
                ("Ovis1.6-9B", 79.96),
                ("LEFT", 56.69),
                ("NeSyCoCo", 56.12),
                ("ViperGPT", 31.05),
            ]
        },
        by_method=True,
    ),
    "table6": PaperTable(
        "Table 6: Ref-Adv (Acc@IoU 0.5, %)",
        ["accuracy"],
        {
            m: {"accuracy": v}
            for m, v in [
                ("NePTune (8B)", 71.57),
                ("NePTune (8B) + verification", 78.08),
                ("NePTune (1B)", 60.69),
                ("NePTune (1B) fine-tuned through programs", 68.06),
                ("NePTune (1B) fine-tuned + verification", 74.59),
                ("InternVL2.5-8B", 76.13),
                ("Florence-2-L", 71.73),
                ("NAVER", 65.13),
                ("ViperGPT", 60.66),
            ]
        },
        by_method=True,
    ),
    "table7": PaperTable(
        "Table 7: Ref-GTA (Acc@IoU 0.5, %)",
        ["accuracy"],
        {
            m: {"accuracy": v}
            for m, v in [
                ("NePTune (8B)", 69.69),
                ("NePTune (1B)", 34.92),
                ("NePTune (1B) fine-tuned through programs (1,000 samples)", "69.90 ± 1.16"),
                ("InternVL2.5-1B, ordinary fine-tuning", 32.61),
                ("InternVL2.5-8B", 6.95),
                ("NAVER", 58.73),
                ("Florence-2-L", 58.65),
            ]
        },
        by_method=True,
    ),
}

PAPER.update({key: PaperTable(**fields, by_method=True) for key, fields in vlagent_tables.PAPERS.items()})

# our question families -> the paper's CLEVR categories
CLEVR_FAMILIES = {
    "exist": "exist",
    "query": "query",
    "compare_attribute": "compare attr.",
    "count": "count",
    "compare_integer": "compare number",
}
SYNTHETIC_DATASETS = {"clevr_synthetic"}
ORACLE_VLMS = {"scene_oracle"}  # answers from scene annotations, not from pixels
ORACLE_DETECTORS = {"gt"}  # ground-truth boxes


# ---- what a run is ---------------------------------------------------------------------
@dataclass
class RunInfo:
    """One run directory: what it measured and its accuracies (``cells[row] = (accuracy, n)``)."""

    name: str
    dataset: str
    split: str
    config: dict[str, Any]
    source: str  # "evaluation.json" or "results.jsonl"
    overall: tuple[float | None, int]
    families: dict[str, tuple[float | None, int]]
    failed: tuple[int, int] = (0, 0)  # (errored + fallback samples, samples)
    cells: dict[str, tuple[float | None, int]] = field(default_factory=dict)
    benchmark: dict[str, Any] | None = None  # a benchmark's official numbers (analysis/benchmarks.py)

    @property
    def synthetic(self) -> bool:
        return self.dataset in SYNTHETIC_DATASETS

    @property
    def perception(self) -> str:
        vlm, det = self.config.get("vlm_model_name", "?"), self.config.get("od_model", "?")
        parts = []
        if vlm in ORACLE_VLMS:
            parts.append(f"oracle answers ({vlm}: scene annotations)")
        if det in ORACLE_DETECTORS:
            parts.append("ground-truth boxes")
        if parts:
            return "oracle: " + ", ".join(parts)
        return f"models: VLM {vlm}, detector {det}"

    @property
    def oracle(self) -> bool:
        return self.perception.startswith("oracle")

    @property
    def programs(self) -> str:
        gen = self.config.get("program_generator", "?")
        if gen == "llm":
            return f"LLM {self.config.get('code_gen_model_name', '?')} ({self.config.get('code_gen_provider', '?')})"
        if gen.startswith("symbolic"):
            return f"ground-truth programs ({gen})"
        return str(gen)

    def describe(self) -> str:
        data = "synthetic data (generated CLEVR world)" if self.synthetic else "real data"
        failed, n = self.failed
        fail = f"; {failed} of {n} samples errored or fell back" if failed else ""
        return (
            f"run {self.name}: dataset {self.dataset}, split {self.split}, {data}; perception {self.perception}; "
            f"programs {self.programs}; accuracy from {self.source}{fail}"
        )


@dataclass
class TableSpec:
    """How a paper table is filled: ``datasets`` maps each dataset that feeds it to the row it fills
    (None: the CLEVR categories, from per-family accuracy); ``split`` is the split the paper reports
    (None: the dataset has one). ``format`` replaces the default layout; ``rule`` adds a reason of its own;
    ``cells`` replaces the default cells (a run's accuracy under its dataset's row)."""

    key: str
    datasets: dict[str, str | None]
    split: str | None = None
    format: Callable[[TableSpec, list[RunInfo]], str] | None = None
    rule: Callable[[RunInfo], str | None] | None = None
    cells: Callable[[str, RunInfo], dict[str, tuple[float | None, int]]] | None = None

    @property
    def paper(self) -> PaperTable:
        return PAPER[self.key]

    def comparable(self, run: RunInfo) -> str | None:
        """None when ``run`` measures what the paper measured here, else the reason it does not."""
        if run.dataset not in self.datasets:
            return f"dataset {run.dataset} is not in {self.paper.title.split(':')[0]}"
        if run.synthetic:
            return "synthetic data, not the paper's dataset"
        if run.oracle:
            return f"{run.perception}; the paper's numbers use model perception"
        if self.split is not None and run.split != self.split:
            return f"split {run.split}; the paper reports the {self.split} split"
        return self.rule(run) if self.rule is not None else None


TABLES: list[TableSpec] = [
    TableSpec("table3", {"clevr": None, "clevr_synthetic": None}, split="val"),
    TableSpec("table4", {"clevr_refexps": "Ref", "clevr_puzzle": "Puzzles", "clevr_rpm": "RPM"}),
    TableSpec("table5", {"clevr_humans": "accuracy"}, split="val"),
    TableSpec("table6", {"refadv": "accuracy"}, split="test"),
    TableSpec("table7", {"refgta": "accuracy"}, split="test"),
    *(
        TableSpec(
            key,
            dict(datasets),
            format=vlagent_tables.format_methods,
            rule=vlagent_tables.protocol_reason,
            cells=vlagent_tables.cells,
        )
        for key, datasets in vlagent_tables.DATASETS.items()
    ),
]


def _stats(rows: list[dict[str, Any]]) -> tuple[float | None, int]:
    judged = [r for r in rows if r.get("correct") is not None]
    return (round(100.0 * sum(1 for r in judged if r["correct"]) / len(judged), 2) if judged else None, len(judged))


def read_run(run_dir: Path) -> RunInfo:
    """Read a run directory (config.json, and evaluation.json or results.jsonl, and summary.json)."""
    from neptune_core.config import RunConfig
    from neptune_core.errors import UserError
    from runners.outcomes import outcome_of
    from runners.results import read_results

    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise UserError(f"{run_dir} is not a run directory (no config.json); pass experiments/<run>")
    config = {**RunConfig().to_dict(), **json.loads(cfg_path.read_text())}  # an older config: defaults for the rest
    rows, _ = read_results(run_dir / "results.jsonl")
    evaluation = run_dir / "evaluation.json"
    if evaluation.is_file():
        ev = json.loads(evaluation.read_text())
        source = "evaluation.json"
        overall = (ev["overall"]["accuracy"], ev["overall"]["total"])
        families = {f: (s["accuracy"], s["total"]) for f, s in ev["per_family"].items()}
    else:
        if not rows:
            raise UserError(f"{run_dir} has no results.jsonl lines to tabulate")
        source = "results.jsonl"
        overall = _stats(rows)
        by_fam: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_fam.setdefault(str(r.get("family", "all")), []).append(r)
        families = {f: _stats(rs) for f, rs in by_fam.items()}
    failed = sum(1 for r in rows if outcome_of(r)[0] != "ok")
    from analysis.benchmarks import benchmark_summary

    return RunInfo(
        run_dir.name,
        str(config.get("dataset", "?")),
        str(config.get("split", "?")),
        config,
        source,
        overall,
        families,
        (failed, len(rows)),
        benchmark=benchmark_summary(rows),
    )


def fill_cells(spec: TableSpec, run: RunInfo) -> dict[str, tuple[float | None, int]]:
    """The cells ``run`` fills in ``spec``'s table."""
    if spec.cells is not None:
        return spec.cells(spec.key, run)
    row = spec.datasets[run.dataset]
    if row is not None:
        return {row: run.overall}
    cells = {"overall": run.overall}
    for fam, cat in CLEVR_FAMILIES.items():
        if fam in run.families:
            cells[cat] = run.families[fam]
    return cells


def _fmt(v: float | str | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def _cell(runs: list[RunInfo], row: str) -> str:
    parts = [f"{_fmt(r.cells[row][0])} (n={r.cells[row][1]})" for r in runs if row in r.cells]
    return " / ".join(parts) if parts else "-"


def format_table(spec: TableSpec, runs: list[RunInfo]) -> str:
    """One paper table as markdown: the published numbers, and a column for the comparable runs."""
    t = spec.paper
    label = "this run: " + ", ".join(r.name for r in runs) if runs else "this run"
    lines = [f"### {t.title}", ""]
    if t.by_method:
        (row,) = t.rows
        lines += [f"| method | paper | {label} |", "|---|---|---|"]
        lines += [f"| {m} | {_fmt(v.get(row))} | - |" for m, v in t.values.items()]
        lines.append(f"| **NePTune, this run** | - | {_cell(runs, row)} |")
    else:
        methods = list(t.values)
        lines += [
            "| | " + " | ".join(f"paper: {m}" for m in methods) + f" | {label} |",
            "|---" * (len(methods) + 2) + "|",
        ]
        for row in t.rows:
            paper = " | ".join(_fmt(t.values[m].get(row)) for m in methods)
            lines.append(f"| {row} | {paper} | {_cell(runs, row)} |")
    if t.note:
        lines += ["", f"Note: {t.note}."]
    return "\n".join(lines)


def format_other(run: RunInfo, reason: str) -> str:
    """A run that no paper number measures: its own accuracies, with the reason it stands apart."""
    lines = [
        f"#### {run.name}",
        "",
        f"Not beside a paper number: {reason}.",
        "",
        "| | accuracy % | n |",
        "|---|---|---|",
    ]
    lines.append(f"| overall | {_fmt(run.overall[0])} | {run.overall[1]} |")
    lines += [f"| {fam} | {_fmt(acc)} | {n} |" for fam, (acc, n) in sorted(run.families.items())]
    return "\n".join(lines)


def format_all(runs: list[RunInfo]) -> str:
    parts = [f"Published numbers: {SOURCE}.", "\n".join(f"- {r.describe()}" for r in runs)]
    placed: dict[str, list[RunInfo]] = {spec.key: [] for spec in TABLES}
    others: list[tuple[RunInfo, str]] = []
    for run in runs:
        reasons = []
        for spec in TABLES:
            reason = spec.comparable(run)
            if reason is None:
                run.cells = fill_cells(spec, run)
                placed[spec.key].append(run)
                break
            if run.dataset in spec.datasets:
                reasons.append(reason)
        else:
            others.append((run, reasons[0] if reasons else f"no paper table reports dataset {run.dataset}"))
    for spec in TABLES:
        parts.append((spec.format or format_table)(spec, placed[spec.key]))
    if others:
        parts.append("### Runs not comparable with a paper table")
        parts += [format_other(run, reason) for run, reason in others]
    return "\n\n".join(parts) + "\n"


# ---- fine-tuning through programs (Tables 6 and 7) -----------------------------------------------
# A training run (runners/train.py) holds the untuned model's results in before/results.jsonl and the
# fine-tuned model's in results.jsonl; its dataset picks the paper rows they stand beside.
FINETUNE_ROWS: dict[str, tuple[str, str, str]] = {
    # dataset -> (paper table, untuned row, fine-tuned row)
    "refadv": ("table6", "NePTune (1B)", "NePTune (1B) fine-tuned through programs"),
    "refgta": ("table7", "NePTune (1B)", "NePTune (1B) fine-tuned through programs (1,000 samples)"),
}


def training_numbers(run_dir: Path) -> dict[str, Any] | None:
    """Before / after accuracy of a training run directory (None for a run that did not train)."""
    from runners.results import read_results

    training = run_dir / "training.json"
    if not training.is_file():
        return None
    t = json.loads(training.read_text())
    after_rows, _ = read_results(run_dir / "results.jsonl")
    before_rows, _ = read_results(run_dir / "before" / "results.jsonl")
    dataset = json.loads((run_dir / "config.json").read_text()).get("dataset", "?")
    return {
        "name": run_dir.name,
        "dataset": dataset,
        "before": _stats(before_rows) if before_rows else (None, 0),
        "after": _stats(after_rows),
        "train_samples": t.get("train_samples"),
        "epochs": t.get("epochs"),
        "train_seconds": t.get("train_seconds"),
    }


def format_training_tables(run_dirs: list[Path]) -> str:
    """Tables 6 / 7's fine-tuning rows beside the training runs' before and after ("" without training runs)."""
    runs = [n for n in (training_numbers(d) for d in run_dirs) if n is not None]
    if not runs:
        return ""
    parts = ["### Fine-tuning through programs (training runs: untuned -> fine-tuned)", ""]
    parts += ["| run | dataset | paper rows | paper | this run |", "|---|---|---|---|---|"]
    for r in runs:
        before = f"{_fmt(r['before'][0])} (n={r['before'][1]})" if r["before"][1] else "-"
        after = f"{_fmt(r['after'][0])} (n={r['after'][1]})"
        how = f"{r['train_samples']} samples x {r['epochs']} epochs, {r['train_seconds']} s"
        if r["dataset"] in FINETUNE_ROWS:
            table, untuned, tuned = FINETUNE_ROWS[r["dataset"]]
            values = PAPER[table].values
            parts.append(
                f"| {r['name']} | {r['dataset']} | {untuned} | {_fmt(values[untuned]['accuracy'])} | {before} |"
            )
            parts.append(f"| | | {tuned} | {_fmt(values[tuned]['accuracy'])} | {after} ({how}) |")
        else:  # e.g. the offline analogue on the synthetic world: no paper row
            parts.append(f"| {r['name']} | {r['dataset']} | untuned (no paper row) | - | {before} |")
            parts.append(f"| | | fine-tuned through programs | - | {after} ({how}) |")
    return "\n".join(parts) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="analysis/tables.py",
        description="Print the paper's result tables with the given runs beside the published numbers, "
        "where a run measures the same thing (dataset, split, real data, model perception); "
        "other runs are listed apart, with the reason.",
    )
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="experiments/<run> directories")
    p.add_argument(
        "--ablation",
        action="store_true",
        help="print the verifier/ensemble ablation in VLAgent's Table 4 layout for these runs instead",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    from neptune_core.errors import UserError

    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.ablation:
        try:
            print(format_ablation(list(args.run_dirs)), end="")
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    try:
        runs = [read_run(Path(a)) for a in args.run_dirs]
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_all(runs), end="")
    training = format_training_tables(list(args.run_dirs))
    print(f"\n{training}" if training else "", end="")
    return 0


# ---- ablation of verifiers and ensembles (VLAgent Table 4 layout) ----------------------------------
#     python analysis/tables.py --ablation experiments/<naive> experiments/<+caption> experiments/<+ensemble> ...
# Each run is placed by its own config.json: a row by what it switched on (ensemble members, the
# caption verifier), a column by its planner (code_gen_model_name for LLM programs, else
# program_generator). The paper's GQA numbers stand beside (VLAgent, Table 4).

VLAGENT_SOURCE = "VLAgent paper, Table 4 (ablation on GQA, accuracy %)"
ABLATION_ROWS = (
    "naive",
    "+ check & repair + caption verifier",
    "+ check & repair + caption verifier + ensemble",
    "+ ensemble (no caption verifier)",  # ours only: not a row of the paper
)
VLAGENT_TABLE4: dict[str, dict[str, float]] = {
    "GPT 3.5": dict(zip(ABLATION_ROWS, (54.4, 58.9, 61.9), strict=False)),
    "Llama": dict(zip(ABLATION_ROWS, (54.1, 56.9, 58.7), strict=False)),
    "Mistral": dict(zip(ABLATION_ROWS, (55.2, 58.6, 60.7), strict=False)),
    "GLM": dict(zip(ABLATION_ROWS, (54.7, 58.2, 60.4), strict=False)),
}


def ablation_row(config: dict[str, Any]) -> str:
    """Which ablation row a run's config belongs to (ensemble = two or more members anywhere)."""
    ens = config.get("ensemble") or {}
    verifiers = (config.get("verify") or {}).get("verifiers") or []
    uses_ensemble = (config.get("vlm_model_name") == "ensemble" and len(ens.get("vlm_members") or []) > 1) or (
        config.get("od_model") == "ensemble" and len(ens.get("detector_members") or []) > 1
    )
    captions = "caption" in verifiers
    if uses_ensemble:
        return ABLATION_ROWS[2] if captions else ABLATION_ROWS[3]
    return ABLATION_ROWS[1] if captions else ABLATION_ROWS[0]


def ablation_cell(run_dir: Path) -> tuple[str, str, float | None, int]:
    """(row, planner column, accuracy, n) of one run directory (evaluation.json first, else results.jsonl)."""
    from neptune_core.errors import UserError
    from runners.results import read_results

    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise UserError(f"{run_dir} is not a run directory (no config.json); pass experiments/<run>")
    config = json.loads(cfg_path.read_text())
    planner = config.get("code_gen_model_name") if config.get("program_generator") == "llm" else None
    column = f"{config.get('dataset', '?')}: {planner or config.get('program_generator', '?')}"
    evaluation = run_dir / "evaluation.json"
    if evaluation.is_file():
        overall = json.loads(evaluation.read_text())["overall"]
        acc, n = overall["accuracy"], overall["total"]
    else:
        rows, _ = read_results(run_dir / "results.jsonl")
        if not rows:
            raise UserError(f"{run_dir} has no results.jsonl lines to tabulate")
        acc, n = _stats(rows)
    return ablation_row(config), column, acc, n


def format_ablation(run_dirs: list[Path]) -> str:
    """The ablation table: the paper's GQA columns, then one column per planner of the given runs."""
    cells: dict[str, dict[str, list[tuple[float | None, int, str]]]] = {}
    for d in run_dirs:
        row, column, acc, n = ablation_cell(d)
        cells.setdefault(column, {}).setdefault(row, []).append((acc, n, d.name))
    paper = list(VLAGENT_TABLE4)
    ours = list(cells)
    lines = [
        "### Ablation: verifiers and ensembles (VLAgent Table 4 layout)",
        "",
        "| method | "
        + " | ".join(f"paper GQA: {m}" for m in paper)
        + "".join(f" | this run: {c}" for c in ours)
        + " |",
        "|---" * (1 + len(paper) + len(ours)) + "|",
    ]

    def delta(v: float | None, base: float | None) -> str:
        return "" if v is None or base is None else f" ({v - base:+.1f})"

    for row in ABLATION_ROWS:
        parts = []
        for m in paper:
            v = VLAGENT_TABLE4[m].get(row)
            parts.append(
                "-"
                if v is None
                else f"{v:.1f}{delta(v, VLAGENT_TABLE4[m][ABLATION_ROWS[0]]) if row != ABLATION_ROWS[0] else ''}"
            )
        for c in ours:
            runs = cells[c].get(row, [])
            base = cells[c].get(ABLATION_ROWS[0], [(None, 0, "")])[0][0]
            parts.append(
                " / ".join(f"{_fmt(a)}{delta(a, base) if row != ABLATION_ROWS[0] else ''} (n={n})" for a, n, _ in runs)
                or "-"
            )
        lines.append(f"| {row} | " + " | ".join(parts) + " |")
    lines += [
        "",
        f"Published numbers: {VLAGENT_SOURCE}; differences to the naive row in parentheses.",
        "NePTune checks every LLM program (and repairs or re-asks) in all rows; VLAgent's naive row has no SS-parser.",
        "Runs: " + "; ".join(f"{d.name} -> {ablation_cell(d)[0]}" for d in run_dirs),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
    sys.exit(main())
