"""The run directory: experiments/<config stem>-<config hash>/ with the resolved
config (no secrets), the git commit, results.jsonl and summary.json. The same
command always maps to the same directory, so a rerun resumes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from neptune_core.config import RunConfig

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
    name = config.run_name or f"{config.dataset}-{config.config_hash()}"
    return Path(config.output_dir) / name


def prepare_run_dir(config: RunConfig) -> Path:
    """Create the run directory and write config.json and git.json into it."""
    run_dir = run_dir_for(config)
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
    (run_dir / "config.json").write_text(json.dumps(scrub_secrets(config.to_dict()), indent=2) + "\n")
    git_path.write_text(json.dumps(git, indent=2) + "\n")
    return run_dir
