"""Building blocks of the HTML execution report: the inline stylesheet, a small Python
syntax highlighter (stdlib ``tokenize``, no external assets), an image with numbered
boxes as inline SVG over a base64 PNG/JPEG, and probability bars / heat tables.

Everything returned here is an HTML fragment with no reference to anything outside
the page: no URLs, no fonts, no scripts.
"""

from __future__ import annotations

import base64
import html
import io
import keyword
import tokenize
from typing import Any

from PIL import Image

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:10px 20px}header a{color:#9cc4ff}
main{padding:14px 20px;max-width:1200px}
h1{font-size:20px;margin:4px 0}h2{font-size:16px;margin:18px 0 6px}
.card{background:#fff;border-radius:8px;padding:12px 16px;margin:10px 0;box-shadow:0 1px 3px rgba(0,0,0,.12)}
.row{display:flex;gap:18px;flex-wrap:wrap;align-items:flex-start}
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 8px;border-bottom:1px solid #e3e5ea;text-align:left}
.ok{color:#137333;font-weight:600}.bad{color:#b3261e;font-weight:600}.muted{color:#6b7280}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;color:#fff}
.b-ok{background:#1e8e3e}.b-bad{background:#d93025}.b-err{background:#b06000}.b-na{background:#6b7280}
pre.code{background:#1e1f29;color:#e6e6e6;padding:10px 12px;border-radius:6px;font-size:13px;line-height:1.45;overflow:auto;margin:0}
.k{color:#ff79c6}.s{color:#f1fa8c}.n{color:#bd93f9}.c{color:#6d7a96;font-style:italic}.p{color:#50fa7b}.f{color:#8be9fd}.o{color:#ffb86c}
.bar{display:flex;align-items:center;gap:6px;font-size:12px;margin:1px 0}
.bar .lbl{width:34px;text-align:right;color:#444}.bar .track{width:180px;height:11px;background:#e8eaed;border-radius:3px;overflow:hidden}
.bar .fill{height:100%;background:#4f7cff}.bar .fill.hi{background:#1e8e3e}
.heat td{width:34px;height:20px;text-align:center;font-size:11px;border:1px solid #fff}
.call{border-left:3px solid #4f7cff;padding:4px 10px;margin:8px 0;background:#fafbff}
.call.q{border-left-color:#ff9f1c}.q{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px}
.err{background:#fdecea;border:1px solid #f5c2c0;border-radius:6px;padding:8px 10px;font-family:ui-monospace,monospace;font-size:12.5px;white-space:pre-wrap}
.fam .track{width:260px}nav a{margin-right:14px}
"""

_BOX_COLOURS = ("#ff3b30", "#34c759", "#0a84ff", "#ff9f0a", "#bf5af2", "#64d2ff", "#ffd60a", "#ff375f")
PRIMITIVES = {"score", "query", "n"}
ALGEBRA = {"and_op", "or_op", "not_op", "implies", "exists", "forall", "count", "iota", "contract", "argmax"}


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def highlight_python(source: str) -> str:
    """Python source as HTML spans (keywords, strings, numbers, comments, primitives).

    Falls back to escaped plain text for source that does not tokenize.
    """
    lines = source.splitlines(keepends=True)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return f'<pre class="code">{esc(source)}</pre>'
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    out: list[str] = []
    pos = 0
    prev_def = False
    for tok in tokens:
        if tok.type in (tokenize.ENDMARKER, tokenize.DEDENT) or tok.start[0] > len(lines):
            continue
        start = offsets[tok.start[0] - 1] + tok.start[1]
        end = offsets[tok.end[0] - 1] + tok.end[1] if tok.end[0] <= len(lines) else len(source)
        if start < pos:
            continue
        out.append(esc(source[pos:start]))
        text = source[start:end]
        cls = None
        if tok.type == tokenize.NAME:
            if keyword.iskeyword(tok.string) or tok.string in ("True", "False", "None"):
                cls = "k"
            elif prev_def:
                cls = "f"
            elif tok.string in PRIMITIVES:
                cls = "p"
            elif tok.string in ALGEBRA:
                cls = "o"
        elif tok.type == tokenize.STRING or tok.type in _FSTRING_TYPES:
            cls = "s"
        elif tok.type == tokenize.NUMBER:
            cls = "n"
        elif tok.type == tokenize.COMMENT:
            cls = "c"
        out.append(f'<span class="{cls}">{esc(text)}</span>' if cls else esc(text))
        prev_def = tok.type == tokenize.NAME and tok.string in ("def", "class")
        pos = end
    out.append(esc(source[pos:]))
    return f'<pre class="code">{"".join(out)}</pre>'


_FSTRING_TYPES = {
    getattr(tokenize, n) for n in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END") if hasattr(tokenize, n)
}


def image_data_uri(image: Image.Image, max_side: int = 640) -> tuple[str, int, int]:
    """A JPEG data URI of ``image`` (downscaled to ``max_side``) and its original size."""
    w, h = image.size
    im = image.convert("RGB")
    scale = min(1.0, max_side / max(w, h))
    if scale < 1.0:
        im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), w, h


def boxes_svg(image: Image.Image | None, boxes: list[list[float]] | None, width_px: int = 520) -> str:
    """The image with numbered boxes as one inline SVG (the image embedded as base64)."""
    boxes = boxes or []
    if image is None:
        return '<div class="muted">(image not available)</div>'
    uri, w, h = image_data_uri(image)
    parts = [
        f'<svg viewBox="0 0 {w} {h}" width="{width_px}" height="{round(width_px * h / w)}" role="img">',
        f'<image href="{uri}" x="0" y="0" width="{w}" height="{h}"/>',
    ]
    for i, b in enumerate(boxes):
        x1, y1, x2, y2 = (float(v) for v in b)
        col = _BOX_COLOURS[i % len(_BOX_COLOURS)]
        parts.append(
            f'<rect x="{x1:.1f}" y="{y1:.1f}" width="{x2 - x1:.1f}" height="{y2 - y1:.1f}" '
            f'fill="none" stroke="{col}" stroke-width="2"/>'
        )
        ty = max(y1, 14.0)
        parts.append(f'<rect x="{x1:.1f}" y="{ty - 14:.1f}" width="{10 + 8 * len(str(i))}" height="14" fill="{col}"/>')
        parts.append(
            f'<text x="{x1 + 3:.1f}" y="{ty - 3:.1f}" font-size="12" font-family="sans-serif" '
            f'fill="#fff" font-weight="bold">{i}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def bar(label: str, p: float, highlight: bool = False, cls: str = "bar") -> str:
    p = min(1.0, max(0.0, float(p)))
    hi = " hi" if highlight else ""
    return (
        f'<div class="{cls}"><span class="lbl">{esc(label)}</span><span class="track">'
        f'<span class="fill{hi}" style="display:block;width:{100 * p:.1f}%"></span></span>'
        f"<span>{p:.3f}</span></div>"
    )


def prob_bars(probs: Any) -> str:
    """Bars for a scalar or a vector of probabilities, a heat table for a matrix."""
    if isinstance(probs, (int, float)):
        return bar("p", probs, probs > 0.5)
    if isinstance(probs, list) and probs and isinstance(probs[0], list):
        head = "".join(f"<th>{j}</th>" for j in range(len(probs[0])))
        rows = []
        for i, row in enumerate(probs):
            cells = "".join(
                '<td class="muted" title="not evaluated (lazy relation)">&middot;</td>'
                if v is None
                else f'<td style="background:rgba(79,124,255,{min(1.0, max(0.0, float(v))):.2f})">{float(v):.2f}</td>'
                for v in row
            )
            rows.append(f"<tr><th>{i}</th>{cells}</tr>")
        return f'<table class="heat"><tr><th>x\\y</th>{head}</tr>{"".join(rows)}</table>'
    if isinstance(probs, list):
        return "".join(bar(f"#{i}", v, v > 0.5) for i, v in enumerate(probs)) or '<span class="muted">(no boxes)</span>'
    return f'<span class="muted">{esc(probs)}</span>'
