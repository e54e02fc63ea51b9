"""The run directory: experiments/<config stem>-<config hash>/ with the resolved
config (no secrets), the git commit, results.jsonl and summary.json. The same
command always maps to the same directory, so a rerun resumes."""

from __future__ import annotations

import json
import subprocess
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
    (run_dir / "config.json").write_text(json.dumps(scrub_secrets(config.to_dict()), indent=2) + "\n")
    (run_dir / "git.json").write_text(json.dumps(git_commit(), indent=2) + "\n")
    return run_dir
