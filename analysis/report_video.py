"""The video part of a sample's report page: what was watched and why (runners/run_video.py rows).

:func:`key_frame` decodes the frame ``score``/``query`` saw (the middle one of the frames the program
saw), so a video row's boxes are drawn on the frame they were found in. :func:`video_html` shows the
chunks of VLAgent's long-video selection with their scores, each round's captions and LLM votes, the
decision, and a strip of the frames the program saw (decoded from the row's video file at the row's
frame times; a file that is gone leaves the strip out, not the page).
"""

from __future__ import annotations

import logging
from typing import Any

from PIL import Image

from analysis.report_assets import esc, image_data_uri

log = logging.getLogger(__name__)
MAX_STRIP = 32
THUMB_SIDE = 96


def _frames(row: dict[str, Any], times: list[float], max_side: int) -> list[Image.Image] | None:
    from neptune_core.video import VideoError, read_frames

    video = row.get("video") or {}
    try:
        return read_frames(str(video["path"]), times, max_side=max_side)
    except (KeyError, OSError, VideoError) as e:
        log.info("report: frames of %s not drawn: %s", row.get("id"), e)
        return None


def key_frame(row: dict[str, Any]) -> Image.Image | None:
    """The frame a video row's ``boxes`` belong to (None: not a video row, or its file is gone)."""
    times = (row.get("video") or {}).get("frames") or []
    if not times:
        return None
    got = _frames(row, [times[(len(times) - 1) // 2]], 640)
    return got[0] if got else None


def _selection_html(sel: dict[str, Any]) -> str:
    chunks = sel.get("chunks") or []
    chosen = set(sel.get("chosen") or [])
    scores = sel.get("scores") or []
    cells = "".join(
        f"<tr><th>{i + 1}</th><td>{esc(s)}-{esc(e)} s</td>"
        f"<td>{esc(scores[i]) if i < len(scores) else '-'}</td><td>{'chosen' if i in chosen else ''}</td></tr>"
        for i, (s, e) in enumerate(chunks)
    )
    parts = [
        f"<div>{len(chunks)} chunk(s) of {esc(sel.get('duration'))} s; decision: <b>{esc(sel.get('decision', ''))}</b></div>",
        f"<table><tr><th>chunk</th><th>span</th><th>score</th><th></th></tr>{cells}</table>",
    ]
    if sel.get("fallback"):
        parts.append(f'<div class="err">fallback: {esc(sel["fallback"])}</div>')
    for rnd in sel.get("rounds") or []:
        votes = "; ".join(
            f"{esc(v.get('model'))}: {esc(v.get('relevance', v.get('error', '')))}" for v in rnd.get("votes") or []
        )
        caps = "".join(
            f"<li>chunk {i + 1}: <span class='muted'>{esc(str(c)[:400])}</span></li>"
            for i, c in enumerate(rnd.get("captions") or [])
        )
        parts.append(
            f"<h3>round {esc(rnd.get('round'))} (phase {esc(rnd.get('phase'))}): {esc(rnd.get('verdict', ''))}</h3>"
            f"<div>votes: {votes}</div><ul>{caps}</ul>"
        )
    return "".join(parts)


def video_html(row: dict[str, Any]) -> str:
    """The card of a video row ("" for other rows)."""
    video = row.get("video")
    if not isinstance(video, dict):
        return ""
    times = list(video.get("frames") or [])[:MAX_STRIP]
    boxes = video.get("boxes") or []
    strip = ""
    images = _frames(row, times, THUMB_SIDE) if times else None
    if images:
        thumbs = []
        for k, (t, im) in enumerate(zip(times, images, strict=True)):
            uri, w, h = image_data_uri(im, THUMB_SIDE)
            n = len(boxes[k]) if k < len(boxes) else 0
            thumbs.append(
                f'<figure style="display:inline-block;margin:2px"><img src="{uri}" width="{w}" height="{h}">'
                f'<figcaption class="muted">#{k} t={float(t):.1f}s, {n} boxes</figcaption></figure>'
            )
        strip = f"<div>{''.join(thumbs)}</div>"
    head = (
        f"<div class='muted'>{esc(video.get('path'))}: {esc(video.get('duration'))} s at {esc(video.get('fps'))} fps; "
        f"the program saw {len(video.get('frames') or [])} frames</div>"
    )
    sel = video.get("selection") or {}
    return f'<div class="card"><h2>Video</h2>{head}{strip}{_selection_html(sel)}</div>'


__all__ = ["key_frame", "video_html"]
