"""The HTML execution report: files, content, self-containment, and a Chromium render."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from analysis.report import write_report
from analysis.report_assets import highlight_python
from scripts.screenshot_report import bad_references, find_chromium, screenshot

PROGRAM = 'def execute(score, query, n):\n    s = score("Is the object in the red box red?", 1)  # filter\n    return s.exists()\n'


def _rows() -> list[dict]:
    base = {
        "family": "exist",
        "program": PROGRAM,
        "program_origin": "symbolic",
        "boxes": [[10, 10, 40, 40], [50, 20, 90, 60]],
        "timings": {"total": 3.0},
        "functions": [],
    }
    trace = [
        {
            "primitive": "score",
            "question": "Is the object in the red box red?",
            "arity": 1,
            "type": None,
            "probs": [0.9, 0.1],
        },
        {"primitive": "score", "question": "Is it left?", "arity": 2, "type": None, "probs": [[0.5, 0.2], [0.8, 0.5]]},
        {"primitive": "query", "question": "What color?", "object_id": 0, "answer": "red"},
    ]
    return [
        {
            **base,
            "id": "q1",
            "question": "Is there a red thing?",
            "gold": "yes",
            "pred": "yes",
            "correct": True,
            "error": None,
            "trace": trace,
        },
        {
            **base,
            "id": "q2",
            "question": "Is there a blue <thing>?",
            "gold": "yes",
            "pred": "no",
            "correct": False,
            "error": None,
            "trace": trace[:1],
        },
        {
            **base,
            "id": "q3",
            "question": "Count?",
            "gold": "2",
            "pred": None,
            "correct": False,
            "family": "count",
            "error": {"type": "ProgramCheckError", "message": "bad name 'foo'", "stage": "execute"},
            "trace": [],
        },
    ]


@pytest.fixture()
def run_dir(tmp_path):
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    image = Image.new("RGB", (120, 80), (120, 120, 120))
    write_report(tmp_path, images=lambda _id: image)
    return tmp_path


def test_report_files_and_content(run_dir):
    out = run_dir / "report"
    index = (out / "index.html").read_text()
    assert "Accuracy: 33.33% (1/3)" in index
    assert "exist" in index and "count" in index
    pages = sorted(p.name for p in out.glob("sample_*.html"))
    assert pages == ["sample_q1.html", "sample_q2.html", "sample_q3.html"]
    assert index.index("sample_q3.html") < index.index("sample_q1.html")  # failures first
    q3 = (out / "sample_q3.html").read_text()
    assert "ProgramCheckError" in q3 and "bad name" in q3
    q1 = (out / "sample_q1.html").read_text()
    assert "data:image/jpeg;base64," in q1 and q1.count("<rect") >= 2
    assert "width:90.0%" in q1 and "0.80" in q1 and "answer: <b>red</b>" in q1
    assert "&lt;thing&gt;" in (out / "sample_q2.html").read_text()


def test_report_is_self_contained(run_dir):
    for page in (run_dir / "report").glob("*.html"):
        assert bad_references(page) == []
        assert not re.search(r"https?://", page.read_text())


def test_highlighter_marks_tokens():
    h = highlight_python(PROGRAM)
    assert '<span class="k">def</span>' in h and '<span class="p">score</span>' in h
    assert '<span class="c"># filter</span>' in h and '<span class="n">1</span>' in h
    assert "red box red?" in h
    assert "<pre" in highlight_python("def broken(:\n  '''")


@pytest.mark.slow
@pytest.mark.skipif(find_chromium() is None, reason="chromium not installed")
def test_chromium_renders_report(run_dir, tmp_path):
    png = tmp_path / "shot.png"
    failures = screenshot(run_dir / "report" / "sample_q1.html", png, 800, 600)
    assert failures == []
    with Image.open(png) as im:
        assert im.size == (800, 600)
        assert len(set(im.convert("RGB").get_flattened_data())) > 20  # something was drawn
