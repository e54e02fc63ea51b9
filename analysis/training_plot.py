"""The loss curve of a training run (runners/train.py) as a PNG, and its card in the HTML report.

``plot_loss_curve(history, path)`` draws the per-step training loss (thin), its mean over
each epoch (thick), on a log scale, and the learning rate (right axis). ``training_card(run_dir)``
is the report's "Fine-tuning through programs" section: accuracy before and after, the
training time and the plot, embedded so the report stays self-contained.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from analysis.report_assets import esc


def plot_loss_curve(history: dict[str, Any], path: Path) -> Path:
    """Write the loss curve of ``history`` (runners.train's record) to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    steps = [s for s in history["steps"] if s["loss"] is not None]
    fig, ax = plt.subplots(figsize=(7.0, 3.6), dpi=110)
    try:
        ax.plot([s["step"] for s in steps], [s["loss"] for s in steps], lw=0.8, alpha=0.45, label="loss per step")
        ends, means = [], []
        for e in history["epochs"]:
            in_epoch = [s["step"] for s in history["steps"] if s["epoch"] == e["epoch"]]
            if in_epoch and e["loss"] is not None:
                ends.append(max(in_epoch))
                means.append(e["loss"])
        ax.plot(ends, means, "o-", lw=2.0, label="epoch mean")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("training loss (log scale)")
        if steps and min(s["loss"] for s in steps) > 0:
            ax.set_yscale("log")
        ax.set_title("Fine-tuning through programs")
        ax.grid(alpha=0.3)
        lr = ax.twinx()
        lr.plot(
            [s["step"] for s in history["steps"]],
            [s["lr"] for s in history["steps"]],
            color="gray",
            lw=0.8,
            ls="--",
            label="learning rate",
        )
        lr.set_ylabel("learning rate", color="gray")
        handles = ax.get_legend_handles_labels()[0] + lr.get_legend_handles_labels()[0]
        ax.legend(handles, [h.get_label() for h in handles], loc="upper right", fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def training_card(run_dir: Path) -> str:
    """HTML for the report index: before/after accuracy, training time and the loss curve ("" if not a training run)."""
    summary_path, training_path = run_dir / "summary.json", run_dir / "training.json"
    if not training_path.is_file():
        return ""
    t = json.loads(training_path.read_text())
    s = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    png = run_dir / str(t.get("loss_curve", "training_loss.png"))
    img = (
        f'<img alt="training loss" src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}">'
        if png.is_file()
        else '<div class="muted">(no loss curve)</div>'
    )
    before, after = s.get("accuracy_before"), s.get("accuracy_after")
    return (
        '<div class="card"><h2>Fine-tuning through programs</h2>'
        f"<table><tr><th>accuracy before</th><td>{esc(before if before is not None else 'n/a')}%</td></tr>"
        f"<tr><th>accuracy after</th><td><b>{esc(after)}%</b></td></tr>"
        f"<tr><th>training</th><td>{esc(t.get('train_samples'))} samples ({esc(t.get('train_split'))}) x "
        f"{esc(t.get('epochs'))} epochs, {esc(t.get('optimizer_steps'))} optimizer steps, "
        f"{esc(t.get('train_seconds'))} s</td></tr>"
        f"<tr><th>losses</th><td>{esc(t.get('loss_kinds'))}</td></tr>"
        f"<tr><th>skipped</th><td>{esc(t.get('skipped'))}</td></tr>"
        f"<tr><th>trained weights</th><td>vlm_adapter {esc(t.get('vlm_adapter'))}</td></tr></table>"
        f"{img}</div>"
    )
