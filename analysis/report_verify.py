"""Report sections of ensembles and verifiers: each decision of the verify stage, each
member's solo answer, each member's output of a primitive call, each detector member's
boxes. Called by :mod:`analysis.report` for every sample page; each returns "" when the
row has nothing of its kind."""

from __future__ import annotations

import json
from typing import Any

from analysis.report_assets import esc

_STATUS_CLASS = {"replaced": "bad", "moved": "bad", "kept": "ok", "accepted": "ok"}


def _value(v: Any) -> str:
    return esc(v if isinstance(v, str) else json.dumps(v))


def _kv(record: dict[str, Any], skip: tuple[str, ...]) -> str:
    rows = "".join(
        f"<tr><th>{esc(k)}</th><td>{_value(v)}</td></tr>"
        for k, v in record.items()
        if k not in skip and v not in (None, {})
    )
    return f"<table>{rows}</table>" if rows else ""


def _box_steps(steps: list[dict[str, Any]]) -> str:
    head = "<tr><th>step</th><th>candidate box</th><th>program p</th><th>VLM p(yes)</th><th>accepted</th></tr>"
    body = "".join(
        f"<tr><td>{k + 1}</td><td>#{esc(s['candidate'])} {esc(s['box'])}</td><td>{esc(s.get('program_p'))}</td>"
        f'<td>{esc(s["p_yes"])}</td><td class="{"ok" if s["accepted"] else "bad"}">{"yes" if s["accepted"] else "no"}</td></tr>'
        for k, s in enumerate(steps)
    )
    return f"<table>{head}{body}</table>"


def verify_html(row: dict[str, Any]) -> str:
    """The "Verification" card: per verifier its status, reason, caption(s), verdicts and steps."""
    record = row.get("verify")
    if not record:
        return ""
    parts = [
        f'<div class="muted">before verification: <b>{esc(record.get("pred_before"))}</b> '
        f"(correct: {esc(record.get('correct_before'))}); after: <b>{esc(row.get('pred'))}</b>; "
        f"changed: {esc(record.get('changed'))}</div>"
    ]
    for name, rec in record.items():
        if not isinstance(rec, dict):
            continue
        status = rec.get("status", "?")
        parts.append(
            f'<h3>{esc(name)} verifier: <span class="{_STATUS_CLASS.get(status, "muted")}">{esc(status)}</span></h3>'
            f"<div>{esc(rec.get('reason', ''))}</div>"
        )
        if rec.get("caption"):
            parts.append(f'<div class="call"><b>caption</b> {esc(rec["caption"])}</div>')
        for i, cap in (rec.get("captions") or {}).items():
            parts.append(f'<div class="call"><b>caption of box #{esc(i)}</b> {esc(cap)}</div>')
        if rec.get("steps"):
            parts.append(f"<div>question: {esc(rec.get('question'))}</div>{_box_steps(rec['steps'])}")
        parts.append(_kv(rec, ("status", "reason", "caption", "captions", "steps", "question")))
    return f'<div class="card"><h2>Verification</h2>{"".join(parts)}</div>'


def members_html(row: dict[str, Any]) -> str:
    """The "Ensemble members alone" card: each member's own prediction on this sample's program."""
    members = row.get("members")
    det = (row.get("detection") or {}).get("members") or {}
    if not members and not det:
        return ""
    parts = []
    if members:
        body = "".join(
            f"<tr><td>{esc(n)}</td><td>{esc(m.get('pred'))}</td>"
            f'<td class="{"ok" if m.get("correct") else "bad"}">{esc(m.get("correct"))}</td>'
            f'<td class="muted">{esc((m.get("error") or {}).get("message", ""))}</td></tr>'
            for n, m in members.items()
        )
        parts.append(
            "<h3>each member alone on this program</h3><table><tr><th>member</th><th>pred</th><th>correct</th>"
            f"<th>error</th></tr>{body}</table>"
        )
    if det:
        body = "".join(
            f"<tr><td>{esc(n)}</td><td>{len(d['boxes'])}</td><td>{esc(d['boxes'])}</td></tr>" for n, d in det.items()
        )
        parts.append(
            f"<h3>detector members (fused by WBF)</h3><table><tr><th>member</th><th>boxes</th><th></th></tr>{body}</table>"
        )
    return f'<div class="card"><h2>Ensemble</h2>{"".join(parts)}</div>'


def call_info_html(call: dict[str, Any]) -> str:
    """A primitive call's recorded info: unknown concepts stand out, then each ensemble member's
    output, then anything else the backend recorded."""
    info = dict(call.get("info") or {})
    unknown = info.pop("unknown_concepts", None)
    members = info.pop("members", None)
    out = ""
    if unknown:
        out += f'<div class="err">unknown to the vision model (p = 0.5): {esc(", ".join(map(str, unknown)))}</div>'
    if members:
        rows = "".join(f"<tr><td>{esc(n)}</td><td>{_value(v)}</td></tr>" for n, v in members.items())
        out += f'<table class="muted"><tr><th>member</th><th>output</th></tr>{rows}</table>'
    if info:
        out += f'<div class="muted">{esc(json.dumps(info, default=str)[:500])}</div>'
    return out


def index_html(summary: dict[str, Any]) -> str:
    """The index's card for member accuracies and the verification counts (from summary.json fields)."""
    parts = []
    if summary.get("member_accuracy"):
        cells = "".join(f"<tr><td>{esc(n)}</td><td>{esc(a)}%</td></tr>" for n, a in summary["member_accuracy"].items())
        parts.append(
            f"<h3>ensemble {esc(summary.get('accuracy'))}% vs each member alone</h3>"
            f"<table><tr><th>member</th><th>accuracy</th></tr>{cells}</table>"
        )
    v = summary.get("verification")
    if v:
        parts.append(
            f"<h3>verification</h3><div>{v['changed']} of {v['rows']} answers changed "
            f"({v['changed_to_correct']} to correct, {v['changed_to_wrong']} to wrong); accuracy "
            f"{esc(v['accuracy_before'])}% before, {esc(v['accuracy_after'])}% after</div>{_value(v['by_verifier'])}"
        )
    return f'<div class="card"><h2>Ensemble and verification</h2>{"".join(parts)}</div>' if parts else ""
