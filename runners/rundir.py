"""The run directory: experiments/<config stem>-<run hash>/ with the resolved
config (no secrets, ``data_root`` resolved to the folder the data was read from), the
data's identity (``data.json``), the git commit, results.jsonl and summary.json. The same
command on the same data always maps to the same directory, so a rerun resumes; other
data gives another directory (:mod:`runners.identity`).

The directory is made only after the run's preflight passed; a start that fails later
without writing a result removes the directory it made (:func:`discard_if_unused`).
``--restart`` moves an existing directory aside (nothing is deleted) and starts afresh."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from neptune_core.config import RunConfig
from runners.identity import data_identity, run_hash

_SECRET_WORDS = ("key", "token", "secret", "password")


def scrub_secrets(d: Any) -> Any:
    """Drop any field whose name looks like a credential (keys come from the environment only)."""
    if isinstance(d, dict):
        return {k: scrub_secrets(v) for k, v in d.items() if not any(w in k.lower() for w in _SECRET_WORDS)}
    return d


def git_commit() -> dict[str, Any]:
    """The repository's commit and whether the tree had uncommitted changes."""
    here = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"commit": None, "dirty": None, "note": f"git unavailable: {e}"}
    if sha.returncode != 0:
        return {"commit": None, "dirty": None, "note": sha.stderr.strip()[:200]}
    return {"commit": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def run_dir_for(config: RunConfig) -> Path:
    name = config.run_name or f"{config.dataset}-{run_hash(config)}"
    return Path(config.output_dir) / name


# what a run directory holds before its first result (removed again by discard_if_unused)
_SETUP_FILES = {"config.json", "git.json", "data.json", "selection.json"}


def discard_if_unused(run_dir: Path) -> bool:
    """Remove ``run_dir`` if it holds nothing but the setup files (a start that failed); True if removed."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return False
    for p in run_dir.iterdir():
        if p.name in _SETUP_FILES:
            continue
        if p.name.startswith("results") and p.is_file() and p.stat().st_size == 0:
            continue
        return False
    shutil.rmtree(run_dir)
    return True


def move_aside(run_dir: Path) -> Path:
    """Rename ``run_dir`` to ``<name>.replaced-<time>`` (for --restart); returns the new path."""
    aside = run_dir.with_name(f"{run_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while aside.exists():
        n += 1
        aside = run_dir.with_name(f"{run_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
    run_dir.rename(aside)
    return aside


def prepare_run_dir(config: RunConfig, *, restart: bool = False) -> Path:
    """Create the run directory and write config.json, data.json and git.json into it.

    ``restart``: an existing directory of the same run is moved aside first (see :func:`move_aside`).
    """
    run_dir = run_dir_for(config)
    if restart and run_dir.exists():
        aside = move_aside(run_dir)
        print(f"note: --restart: the previous run directory was moved to {aside}", file=sys.stderr)
    identity = data_identity(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    git = git_commit()
    git_path = run_dir / "git.json"
    if (run_dir / "results.jsonl").exists() and git_path.exists():
        # resuming: keep the commit the results were started at, and note the one resuming them
        started = json.loads(git_path.read_text())
        old = started.get("commit")
        if old and git.get("commit") and old != git["commit"]:
            print(
                f"note: resuming {run_dir}, whose results were started at commit {old[:10]}; the code is now at "
                f"{git['commit'][:10]} (pass --run_name NEW to start a fresh run)",
                file=sys.stderr,
            )
        started.setdefault("resumed_at", []).append(git)
        git = started
    resolved = dataclasses.replace(config, data_root=identity["data_root"])  # wherever it came from
    (run_dir / "config.json").write_text(json.dumps(scrub_secrets(resolved.to_dict()), indent=2) + "\n")
    (run_dir / "data.json").write_text(json.dumps(identity, indent=2) + "\n")
    git_path.write_text(json.dumps(git, indent=2) + "\n")
    return run_dir
