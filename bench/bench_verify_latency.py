"""Per-sample latency of each component, in VLAgent's Table 6 layout (appendix D.2).

    python bench/bench_verify_latency.py [--samples 40] [--llm_ms 150]

Three runs over the same synthetic questions, side by side in one process:
- naive: LLM programs, the ``classic`` pixel detector, the ``classic`` pixel VisionAgent;
- all, sequential: a detector ensemble (three ``classic`` detectors with 2 % box jitter,
  fused by WBF), a VisionAgent ensemble (``classic`` + two scene oracles with 20 % flip
  noise), and the caption verifier on every answer (confidence_threshold 1.0), captioning
  after execution;
- all, concurrent: the same with the caption verifier's captioning and LLM question
  started before the program is generated (``verify.caption.concurrent``).

What is real here: the prompt assembly, the HTTP round trips of the OpenAI client, program
extraction and checks, the pixel detector and VisionAgent, box fusion, the algebra, the
verifier logic. What is simulated: the LLM is a local OpenAI-compatible server (the test
suite's fake) that answers every request after ``--llm_ms`` (a remote LLM's latency) with
the ground-truth program of the question or a verdict; the captioner is the ``scene``
oracle (near zero cost; a real captioner adds its own time to the caption verifier row).
Rows: wall-clock seconds per sample for the three runs, then per-sample means of the
recorded timings: task planning, detection without/with the ensemble, VisionAgent
execution without/with the ensemble, each member's calls inside the ensemble, and the
caption verifier (caption + LLM) as measured in the sequential run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from code_generator.symbolic import SymbolicClevrGenerator  # noqa: E402
from local_datasets import load_samples  # noqa: E402
from neptune_core.config import load_config  # noqa: E402
from runners import RUNNERS  # noqa: E402
from runners.results import read_results  # noqa: E402
from tests.fake_openai_server import FakeOpenAIServer, delay, last_user_text, reply  # noqa: E402

VERDICT = json.dumps({"settles": False, "answer": "", "reason": "bench: the caption is not analysed"})


def base_config(samples: int, url: str) -> dict[str, Any]:
    return {
        "dataset": "clevr_synthetic",
        "synthetic": {"num_scenes": (samples + 9) // 10, "questions_per_scene": 10, "seed": 0},
        "num_samples": samples,
        "program_generator": "llm",
        "code_gen_provider": "vllm",
        "code_gen_base_url": url,
        "code_gen_model_name": "fake-model",
        "code_gen_concurrency": 1,
        "vlm_model_name": "classic",
        "od_model": "classic",
        "report": False,
        "semantics": {"iota": "minmax"},
    }


def ensemble_config() -> dict[str, Any]:
    return {
        "vlm_model_name": "ensemble",
        "od_model": "ensemble",
        "ensemble": {
            "vlm_members": [
                {"name": "classic", "model": "classic"},
                {"name": "oracle_a", "model": "scene_oracle", "flip_rate": 0.2, "seed": 1},
                {"name": "oracle_b", "model": "scene_oracle", "flip_rate": 0.2, "seed": 2},
            ],
            "detector_members": [
                {"name": f"classic_det_{k}", "model": "classic", "jitter": 0.02, "seed": k} for k in (1, 2, 3)
            ],
        },
    }


def caption_config(url: str, concurrent: bool) -> dict[str, Any]:
    return {
        "verify": {
            "verifiers": ["caption"],
            "caption": {
                "captioner": "scene",
                "confidence_threshold": 1.0,
                "concurrent": concurrent,
                "llm_provider": "vllm",
                "llm_base_url": url,
                "llm_model": "fake-model",
            },
        }
    }


def run(name: str, data: dict[str, Any], out: Path) -> tuple[float, list[dict[str, Any]]]:
    cfg = load_config(None, {**data, "output_dir": str(out)})
    run_dir = out / name
    run_dir.mkdir(parents=True)
    runner = RUNNERS.get(cfg.dataset)(cfg)
    samples = runner.load_samples()
    t0 = time.perf_counter()
    summary = runner.run(run_dir, samples)
    wall = time.perf_counter() - t0
    rows, _ = read_results(run_dir / "results.jsonl")
    if summary["errors"]["total"]:
        raise SystemExit(f"{name}: {summary['errors']} (the bench needs error-free runs)")
    return wall / len(rows), rows


def mean_timing(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.fmean(r["timings"].get(key, 0.0) for r in rows) / 1000.0


def member_seconds(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per-sample mean of each VisionAgent member's time inside the ensemble's calls."""
    total: dict[str, float] = {}
    for r in rows:
        seen: set[tuple] = set()  # a repeated call is a memo hit: its recorded member times were spent once
        for call in r["trace"]:
            key = (call.get("primitive"), call.get("question"), call.get("arity"), call.get("object_id"))
            if key in seen:
                continue
            seen.add(key)
            for name, ms in ((call.get("info") or {}).get("member_ms") or {}).items():
                total[name] = total.get(name, 0.0) + ms
    return {n: v / 1000.0 / len(rows) for n, v in total.items()}


def caption_seconds(rows: list[dict[str, Any]]) -> float:
    vals = []
    for r in rows:
        t = (r.get("verify") or {}).get("caption", {}).get("timings", {})
        vals.append(sum(t.values()) / 1000.0)
    return statistics.fmean(vals)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--llm_ms", type=float, default=150.0, help="simulated latency of each LLM request")
    args = ap.parse_args()

    probe = load_config(None, base_config(args.samples, "http://127.0.0.1:1/v1"))
    symbolic = SymbolicClevrGenerator()
    programs = {s.question: symbolic.program_for(s).source for s in load_samples(probe)}

    def respond(body: dict[str, Any]) -> Any:
        text = last_user_text(body)
        if "Image caption:" in text:
            return delay(args.llm_ms / 1000.0, reply(VERDICT))
        for question, source in programs.items():
            if question in text:
                return delay(args.llm_ms / 1000.0, reply(f"```python\n{source}```"))
        return reply("no program")

    server = FakeOpenAIServer().start()
    server.responder = respond
    url = server.base_url
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            base = base_config(args.samples, url)
            run("warm-up", {**base, **ensemble_config(), "num_samples": 2}, out)  # imports, spaCy, fitted params
            naive_s, naive = run("naive", base, out)
            seq_s, seq = run("sequential", {**base, **ensemble_config(), **caption_config(url, False)}, out)
            par_s, par = run("concurrent", {**base, **ensemble_config(), **caption_config(url, True)}, out)
    finally:
        server.stop()

    rows = [
        ("NePTune naive (planning + detection + execution)", naive_s),
        ("all, sequential (ensembles + caption verifier after execution)", seq_s),
        ("all, concurrent (caption verifier beside planning and execution)", par_s),
        ("task planning (LLM program)", mean_timing(naive, "program")),
        ("detection w/o ensemble (classic)", mean_timing(naive, "detect")),
        ("detection w/ ensemble (3 members + WBF)", mean_timing(seq, "detect")),
        ("VisionAgent execution w/o ensemble (classic)", mean_timing(naive, "execute")),
        ("VisionAgent execution w/ ensemble (3 members)", mean_timing(seq, "execute")),
        *((f"  member {n} (its calls inside the ensemble)", v) for n, v in member_seconds(seq).items()),
        ("caption verifier (caption + LLM), sequential run", caption_seconds(seq)),
        ("verify stage wait, sequential run", mean_timing(seq, "verify")),
        ("verify stage wait, concurrent run", mean_timing(par, "verify")),
    ]
    print(f"samples: {args.samples} synthetic questions; simulated LLM latency {args.llm_ms:.0f} ms per request")
    print("| component | time per sample (s) |")
    print("|---|---|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.3f} |")
    print(f"\nconcurrent / sequential: {par_s / seq_s:.2f} (saved {seq_s - par_s:.3f} s per sample)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
