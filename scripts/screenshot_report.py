"""Render an HTML report page in headless Chromium to a PNG and check it is self-contained.

    python scripts/screenshot_report.py experiments/<run>/report/index.html out.png

Checks: no src/href in the HTML points outside the page (only data: URIs and
relative files that exist), and Chromium's log (--enable-logging) shows no failed
resource load. Exit code 0 when both hold, 1 otherwise; 2 when Chromium is absent.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_REF = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
FAIL_WORDS = ("net::ERR", "Failed to load", "Not allowed to load")


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def bad_references(html_path: Path) -> list[str]:
    """References that are external URLs or missing local files."""
    text = html_path.read_text(encoding="utf-8")
    bad = []
    for ref in _REF.findall(text):
        if ref.startswith("data:") or ref.startswith("#"):
            continue
        if re.match(r"^[a-z][a-z0-9+.-]*:", ref, re.IGNORECASE) or ref.startswith("//"):
            bad.append(ref)
        elif not (html_path.parent / ref).exists():
            bad.append(ref)
    return bad


def screenshot(html_path: Path, png_path: Path, width: int = 1280, height: int = 1400) -> list[str]:
    """Take the screenshot; return the failure lines of Chromium's log."""
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("chromium not found (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as profile:
        log = Path(profile) / "chrome_debug.log"
        cmd = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging",
            "--v=0",
            f"--window-size={width},{height}",
            f"--screenshot={png_path.resolve()}",
            html_path.resolve().as_uri(),
        ]
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=120,
            env={"CHROME_LOG_FILE": str(log), **__import__("os").environ},
        )
        text = proc.stderr + (log.read_text(errors="replace") if log.exists() else "")
    if not png_path.exists():
        raise RuntimeError(f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-500:]}")
    return [line for line in text.splitlines() if any(w in line for w in FAIL_WORDS)]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python scripts/screenshot_report.py PAGE.html OUT.png", file=sys.stderr)
        return 2
    if find_chromium() is None:
        print("chromium not found", file=sys.stderr)
        return 2
    page, out = Path(args[0]), Path(args[1])
    bad = bad_references(page)
    failures = screenshot(page, out)
    for b in bad:
        print(f"external or missing reference: {b}")
    for f in failures:
        print(f"load failure: {f}")
    print(f"screenshot: {out} ({'ok' if not bad and not failures else 'PROBLEMS'})")
    return 0 if not bad and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
