"""The HTML execution report of a run (in the spirit of VisProg's / VLAgent's visualisers).

``write_report(run_dir)`` reads ``results.jsonl`` (and the samples' images) and writes
``run_dir/report/index.html`` (accuracy overall and per question family, errors, links)
plus one page per selected sample: the image with numbered boxes, the question, the
program with syntax highlighting, every primitive call of the trace with its
per-object probabilities as bars, the answer against the gold one, and the error.
Pages are self-contained: images are embedded as base64, CSS is inline, no scripts,
no external URLs; the folder opens offline in any browser.

Selection: all failed samples first (wrong answer or error, up to ``max_errors``), then
a seeded random sample of correct ones (up to ``max_correct``).

CLI: ``python -m analysis.report experiments/<run>``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from PIL import Image

from analysis.benchmarks import format_benchmark
from analysis.report_assets import CSS, bar, boxes_svg, esc, highlight_python
from analysis.report_masks import masks_caption, with_masks
from analysis.report_verify import call_info_html, index_html, members_html, verify_html
from analysis.report_video import key_frame, video_html
from analysis.summary import summarize
from analysis.training_plot import training_card
from neptune_core.errors import UserError
from neptune_core.primitives import render_entry
from neptune_core.text import clean_text
from neptune_core.types import Sample
from runners.results import read_results

log = logging.getLogger(__name__)

# sample id -> its image, or its images (a sample with several), or None when not available
ImageSource = Callable[[str], Image.Image | list[Image.Image] | None]


def _page_name(sample_id: str) -> str:
    return "sample_" + re.sub(r"[^A-Za-z0-9_.-]", "_", str(sample_id)) + ".html"


def _status(row: dict[str, Any]) -> tuple[str, str]:
    if row.get("error"):
        return "error", "b-err"
    if row.get("correct") is True:
        return "correct", "b-ok"
    if row.get("correct") is False:
        return "wrong", "b-bad"
    return "not judged", "b-na"


def select_rows(rows: list[dict[str, Any]], max_errors: int = 40, max_correct: int = 20, seed: int = 0) -> list[dict]:
    """Failed rows first (errors, then wrong answers), then a seeded sample of correct ones."""
    failed = [r for r in rows if r.get("error")] + [r for r in rows if not r.get("error") and r.get("correct") is False]
    others = [r for r in rows if not r.get("error") and r.get("correct") is not False]
    picked = random.Random(seed).sample(others, min(max_correct, len(others)))
    order = {r["id"]: i for i, r in enumerate(rows)}
    return failed[:max_errors] + sorted(picked, key=lambda r: order[r["id"]])


def _page(title: str, body: str, nav: str = "") -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1>{nav}</header><main>{body}</main></body></html>"
    )


def _trace_html(trace: list[dict[str, Any]]) -> str:
    """Each trace entry drawn by its primitive's ``render`` (neptune_core/primitives/)."""
    if not trace:
        return '<div class="muted">(no primitive calls)</div>'
    parts = []
    for k, call in enumerate(trace):
        prim = call.get("primitive", "?")
        cls = "call q" if prim == "query" else "call"
        # the primitive draws its own entry; what the backend recorded (unknown concepts, members) follows
        parts.append(f'<div class="{cls}"><b>{k + 1}. {esc(prim)}</b> {render_entry(call)}{call_info_html(call)}</div>')
    return "".join(parts)


_TEXT_CAP = 20_000  # characters of one field shown in the report
_TRACE_CAP = 300  # trace entries drawn per page


def _shown(value: Any, depth: int = 0) -> Any:
    """``value`` with clean text, long strings cut and long lists shortened, for display."""
    if isinstance(value, str):
        text = clean_text(value)
        return text if len(text) <= _TEXT_CAP else text[:_TEXT_CAP] + f"...[{len(text) - _TEXT_CAP} more characters]"
    if depth > 20:
        return "..."
    if isinstance(value, dict):
        return {_shown(str(k), depth + 1): _shown(v, depth + 1) for k, v in list(value.items())[:1000]}
    if isinstance(value, (list, tuple)):
        return [_shown(v, depth + 1) for v in value[:1000]]
    return value


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def safe_row(row: dict[str, Any]) -> dict[str, Any]:
    """A result row as the report and the summary expect it, whatever the file held: text is valid
    and bounded, ``error`` a dict with type and message, timings numbers, the trace a list of dicts
    (at most 300, then a "truncated" marker), boxes lists of four numbers."""
    out = _shown(dict(row))
    out["id"] = _shown(str(row.get("id")))
    if out.get("correct") not in (True, False, None):
        out["correct"] = None
    err = out.get("error")
    if err and not isinstance(err, dict):
        err = {"type": "error", "message": str(err)}
    if err:
        err = {**err, "type": str(err.get("type", "error")), "message": str(err.get("message", ""))}
    out["error"] = err or None
    timings = out.get("timings")
    out["timings"] = {str(k): float(v) for k, v in timings.items() if _number(v)} if isinstance(timings, dict) else {}
    trace = row.get("trace") if isinstance(row.get("trace"), list) else []
    entries = [
        _shown(e) if isinstance(e, dict) else {"primitive": "?", "value": _shown(repr(e))} for e in trace[:_TRACE_CAP]
    ]
    if len(trace) > _TRACE_CAP:
        entries.append({"primitive": "truncated", "message": f"{len(trace) - _TRACE_CAP} more calls not drawn"})
    out["trace"] = entries
    out["boxes"] = _safe_boxes(out.get("boxes"))
    if "images" in out:  # a sample with several images: each with its own boxes
        images = out["images"] if isinstance(out["images"], list) else []
        out["images"] = [
            {"image": str(im.get("image", f"image {k}")), "boxes": _safe_boxes(im.get("boxes"))}
            for k, im in enumerate(images)
            if isinstance(im, dict)
        ]
    functions = out.get("functions")
    out["functions"] = [str(f) for f in functions] if isinstance(functions, list) else []
    for key in ("family", "program_origin"):
        if key in out and out[key] is not None and not isinstance(out[key], str):
            out[key] = str(out[key])
    if not isinstance(out.get("program"), (str, type(None))):
        out["program"] = str(out["program"])
    return out


def _safe_boxes(boxes: Any) -> list[list[float]]:
    boxes = boxes if isinstance(boxes, list) else []
    return [b for b in boxes if isinstance(b, list) and len(b) == 4 and all(_number(v) for v in b)]


def images_html(row: dict[str, Any], image: Image.Image | list[Image.Image] | None) -> str:
    """The sample's image with its numbered boxes; every image, each with its own boxes, when it has several."""
    shown = image if isinstance(image, list) else [image]
    entries = row.get("images") or []
    if len(entries) < 2:
        return boxes_svg(shown[0] if shown else None, row.get("boxes") or [])
    parts = []
    for k, entry in enumerate(entries):
        im = shown[k] if k < len(shown) else None
        parts.append(
            f'<div><div class="muted">image={k}: {esc(entry["image"])} ({len(entry["boxes"])} boxes)</div>'
            f"{boxes_svg(im, entry['boxes'], width_px=360)}</div>"
        )
    return "".join(parts)


def _fallback_page(row: dict[str, Any], error: Exception, nav: str) -> str:
    raw = json.dumps(row, default=repr)[:_TEXT_CAP]
    body = (
        f'<div class="card"><div class="err">This sample\'s page could not be drawn '
        f"({esc(type(error).__name__)}: {esc(str(error)[:500])}); its result line:</div>"
        f'<pre class="code">{esc(raw)}</pre></div>'
    )
    return _page(f"Sample {row.get('id')}", body, nav)


def sample_page(row: dict[str, Any], image: Image.Image | list[Image.Image] | None, nav: str = "") -> str:
    """One sample's page as an HTML string (``image``: the sample's image, or its images)."""
    status, badge = _status(row)
    err = row.get("error")
    err_html = (
        f'<h2>Error</h2><div class="err">{esc(err.get("type"))} (stage {esc(err.get("stage", "?"))}): '
        f"{esc(err.get('message'))}</div>"
        if err
        else ""
    )
    timings = row.get("timings") or {}
    tim = ", ".join(f"{k} {float(v):.1f} ms" for k, v in timings.items())
    boxes = row.get("boxes") or []
    info = (
        f"<table><tr><th>question</th><td>{esc(row.get('question'))}</td></tr>"
        f"<tr><th>family</th><td>{esc(row.get('family', ''))}</td></tr>"
        f"<tr><th>predicted</th><td><b>{esc(row.get('pred'))}</b></td></tr>"
        f"<tr><th>gold</th><td><b>{esc(row.get('gold'))}</b></td></tr>"
        f'<tr><th>result</th><td><span class="badge {badge}">{status}</span></td></tr>'
        f"<tr><th>boxes</th><td>{_boxes_count(row, boxes)}</td></tr>"
        f"{masks_caption(row, image)}"
        f"<tr><th>program</th><td>{esc(row.get('program_origin'))}{_fallback_html(row)}</td></tr>"
        f'<tr><th>timings</th><td class="muted">{esc(tim)}</td></tr></table>'
    )
    program = row.get("program")
    body = (
        f'<div class="card row"><div>{images_html(row, with_masks(image, row))}</div><div>{info}</div></div>'
        f'<div class="card">{err_html}<h2>Program</h2>'
        f"{highlight_python(program) if program else '<div class=muted>(no program)</div>'}</div>"
        + video_html(row)
        + verify_html(row)
        + members_html(row)
        + f'<div class="card"><h2>Primitive calls ({len(row.get("trace") or [])})</h2>{_trace_html(row.get("trace") or [])}</div>'
    )
    return _page(f"Sample {row.get('id')}", body, nav)


def _boxes_count(row: dict[str, Any], boxes: list) -> str:
    entries = row.get("images") or []
    if len(entries) > 1:
        return ", ".join(f"image={k}: {len(e['boxes'])}" for k, e in enumerate(entries)) + " detected"
    return f"{len(boxes)} detected"


def _fallback_html(row: dict[str, Any]) -> str:
    fb = row.get("fallback")
    if not fb:
        return ""
    kind = "transient, redone by the next run" if fb.get("transient") else "final"
    return f'<div class="err">fallback ({kind}): {esc(fb.get("reason"))}</div>'


def index_page(
    rows: list[dict[str, Any]], pages: list[tuple[dict[str, Any], str]], run_name: str, extra: str = ""
) -> str:
    """The report's index as an HTML string (``extra``: more cards after the accuracy, e.g. training)."""
    s = summarize(rows)
    fam_rows = "".join(
        f"<tr><td>{esc(f)}</td><td>{a['correct']}/{a['total']}</td>"
        f"<td>{bar('', (a['accuracy'] or 0) / 100.0, (a['accuracy'] or 0) >= 90, 'bar fam')}</td></tr>"
        for f, a in s["per_family"].items()
    )
    errs = s["errors"]
    err_rows = "".join(f"<tr><td>{esc(t)}</td><td>{n}</td></tr>" for t, n in errs["by_type"].items())
    links = "".join(
        f'<tr><td><a href="{esc(name)}">{esc(r["id"])}</a></td><td><span class="badge {_status(r)[1]}">'
        f"{_status(r)[0]}</span></td><td>{esc(r.get('family', ''))}</td><td>{esc(r.get('question'))}</td>"
        f"<td>{esc(r.get('pred'))}</td><td>{esc(r.get('gold'))}</td></tr>"
        for r, name in pages
    )
    tot = s["timings"].get("total", {})
    out = s.get("outcomes", {})
    acc = s["accuracy"]
    unknown = s["unknown_concepts"]
    unknown_rows = "".join(f"<tr><td>{esc(w)}</td><td>{n}</td></tr>" for w, n in unknown["by_concept"].items())
    body = (
        f'<div class="card"><h2>Accuracy: {acc if acc is not None else "n/a"}% ({s["correct"]}/{s["total"]})</h2>'
        f'<div class="muted">{s["num_samples"]} samples; outcomes: ok {out.get("ok", "n/a")}, '
        f"error {out.get('error', 'n/a')}, fallback {out.get('fallback', 'n/a')} "
        f"(not final: {out.get('not_final', 'n/a')}); errors: {errs['total']}; "
        f"time per sample: median {tot.get('median_ms', 'n/a')} ms, total {tot.get('total_s', 'n/a')} s</div></div>"
        + (
            f'<div class="card"><h2>Official metric</h2><div>{esc(format_benchmark(s["benchmark"]))}</div></div>'
            if s.get("benchmark")
            else ""
        )
        + extra
        + f'<div class="card"><h2>Per question family</h2><table><tr><th>family</th><th>correct</th>'
        f"<th>accuracy</th></tr>{fam_rows}</table></div>"
        + index_html(s)
        + (f'<div class="card"><h2>Errors by type</h2><table>{err_rows}</table></div>' if err_rows else "")
        + (
            f'<div class="card"><h2>Concepts the vision model does not know</h2><div class="muted">'
            f"{unknown['calls']} of {unknown['perception_calls']} perception calls in {unknown['samples']} samples "
            f"answered p = 0.5</div><table><tr><th>concept</th><th>calls</th></tr>{unknown_rows}</table></div>"
            if unknown_rows
            else ""
        )
        + f'<div class="card"><h2>Samples shown ({len(pages)} of {len(rows)}: failures first, then correct ones)</h2>'
        f"<table><tr><th>id</th><th>result</th><th>family</th><th>question</th><th>pred</th><th>gold</th></tr>"
        f"{links}</table></div>"
    )
    return _page(f"NePTune run report: {run_name}", body)


def images_from_samples(samples: Iterable[Sample]) -> ImageSource:
    """An image lookup by sample id over samples already in memory (images load on demand)."""
    by_id = {s.id: s for s in samples}

    def get(sample_id: str) -> Image.Image | list[Image.Image] | None:
        s = by_id.get(sample_id)
        if s is None:
            return None
        images = s.load_images()
        return images if len(images) > 1 else images[0]

    return get


def _images_from_run_config(run_dir: Path) -> ImageSource:
    from local_datasets import load_samples
    from neptune_core.config import load_config

    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise UserError(f"{run_dir} has no config.json: pass samples= to write_report")
    return images_from_samples(load_samples(load_config(cfg_path)))


def write_report(
    run_dir: str | Path,
    samples: Iterable[Sample] | None = None,
    *,
    images: ImageSource | None = None,
    max_errors: int = 40,
    max_correct: int = 20,
) -> Path:
    """Write ``run_dir/report/`` (index + selected sample pages); return the index path.

    Images come from ``images`` (id -> PIL image), else from ``samples``, else by
    reloading the dataset named in ``run_dir/config.json``.
    """
    run_dir = Path(run_dir)
    rows, _ = read_results(run_dir / "results.jsonl")
    rows = [safe_row(r) for r in rows]
    if not rows:
        raise UserError(f"no results in {run_dir / 'results.jsonl'}: run the experiment first")
    selected = select_rows(rows, max_errors, max_correct)
    if images is None:
        images = images_from_samples(samples) if samples is not None else _images_from_run_config(run_dir)
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("sample_*.html"):
        old.unlink()
    names = [_page_name(r["id"]) for r in selected]
    for k, (row, name) in enumerate(zip(selected, names, strict=True)):
        prev = f'<a href="{esc(names[k - 1])}">&larr; previous</a>' if k > 0 else ""
        nxt = f'<a href="{esc(names[k + 1])}">next &rarr;</a>' if k + 1 < len(names) else ""
        nav = f'<nav><a href="index.html">index</a>{prev}{nxt}</nav>'
        try:
            image = key_frame(row) if row.get("video") else None  # a video row: the frame its boxes are in
            page = sample_page(row, image if image is not None else images(row["id"]), nav)
        except Exception as e:  # one odd row must not cost the whole report: its page says what failed
            log.warning("report page of sample %s could not be drawn: %s: %s", row["id"], type(e).__name__, e)
            page = _fallback_page(row, e, nav)
        (out / name).write_text(clean_text(page), encoding="utf-8")
    index = out / "index.html"
    page = index_page(rows, list(zip(selected, names, strict=True)), run_dir.name, training_card(run_dir))
    index.write_text(clean_text(page), encoding="utf-8")
    return index


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m analysis.report <run_dir>", file=sys.stderr)
        return 2
    try:
        print(write_report(args[0]))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
