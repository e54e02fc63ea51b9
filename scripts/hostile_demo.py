"""A full ``python run.py`` run over questions mixing ordinary and hostile programs.

The synthetic CLEVR world with scene-oracle perception (configs/clevr-mini-oracle.json) gives
every ordinary question a correct answer; every ``--every``-th question instead gets one of the
hostile programs below (aliased structures that hang C-level operations, huge tensors through
builtins, thousands of primitive calls, huge results, uncatchable loops...). The programs reach
the real run loop through the LLM generator's program cache: this script writes a cache that
holds the ordinary program (the ground-truth program, translated) or the hostile one under each
question's cache key, so no LLM is ever called. Then it runs run.py and checks the results:
the run finishes, each hostile sample is an error row, each ordinary one is correct.

    python scripts/hostile_demo.py [--out /tmp/neptune_hostile_demo] [--num_samples 60] [--every 3]

``--write_only`` writes the cache and prints the run.py command instead of running it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from code_generator.cache import ProgramCache  # noqa: E402
from code_generator.checks import check_program  # noqa: E402
from code_generator.llm_generator import LLMProgramGenerator  # noqa: E402
from code_generator.symbolic import SymbolicClevrGenerator  # noqa: E402
from neptune_core.config import load_config  # noqa: E402
from neptune_core.types import Program  # noqa: E402
from runners.base import Runner  # noqa: E402

CONFIG = ROOT / "configs" / "clevr-mini-oracle.json"
MODEL = "hostile-demo"  # the cache's model id: nothing is ever asked of it


def _program(body: str) -> str:
    return "def execute(score, query, n):\n" + "\n".join("    " + line for line in body.strip("\n").splitlines()) + "\n"


# 2**36 elements to walk: refused by the interpreter, a C-level hang once its limits are lifted
ALIAS = "a = [0]\nb = [0]\nfor i in range(36):\n    a = [a, a]\n    b = [b, b]\n"
HOSTILE: dict[str, str] = {
    "aliased_compare": _program(ALIAS + 'return "yes" if a == b else "no"'),
    "aliased_sort": _program(ALIAS + "return str(len(sorted([a, b])))"),
    "aliased_hash": _program("t = (0,)\nfor i in range(36):\n    t = (t, t)\nreturn str(len({t: 1}))"),
    "list_8gb": _program("return str(len([0] * 10**9))"),
    "memory_growth": _program('s = "a" * 10**8\nkeep = [s + str(i) for i in range(40)]\nreturn str(len(keep))'),
    "aliased_exception": _program(ALIAS + "raise ValueError(a)"),
    "round_huge": _program("return str(round(1, -10**9))"),
    "int_long_hex": _program('return str(int("f" * 90000, 16))'),
    "tensor_sum": _program(
        's = score("Is the object in the red box left of the object in the green box?", 2)\n'
        'ts = [s(f"v{i}", f"w{i}") for i in range(8)]\nreturn sum(ts, 0).exists()'
    ),
    "set_unions": _program(
        "s = set(range(60000))\nt = set(range(60000, 99000))\nreturn str(len([s | t for i in range(100)]))"
    ),
    "many_calls": _program(
        't = score("Is there a cube?", 0)\nfor i in range(5000):\n'
        '    t = t & score("Is there a cube " + "very " * 150 + str(i) + "?", 0)\nreturn t'
    ),
    "long_question": _program('return score("Is there a " + "very " * 5000 + "big cube?", 0)'),
    "huge_result": _program('return "a" * 100000'),
    "uncatchable_loop": _program("while True:\n    try:\n        pass\n    except Exception:\n        pass"),
    "recursion": _program("def f(k):\n    return f(k + 1)\nreturn f(0)"),
}


def overrides(out: Path, num_samples: int, lifted: bool = False) -> dict[str, str]:
    """The run's config overrides (the cache keys depend on them: write and run with the same)."""
    limits = {"executor.max_sequence_length": "1000000000000", "executor.max_operations": "1000000000000"}
    return {
        **(limits if lifted else {}),
        "num_samples": str(num_samples),
        "program_generator": "llm",
        "code_gen_provider": "vllm",
        "code_gen_model_name": MODEL,
        "code_gen_http_retries": "0",
        "program_cache_address": str(out / "programs.json"),
        "output_dir": str(out / "runs"),
        "run_name": "hostile-demo-lifted" if lifted else "hostile-demo",
    }


def write_cache(out: Path, num_samples: int, every: int) -> tuple[Path, dict[str, str]]:
    """The cache file, and which sample ids got which hostile program."""
    config = load_config(CONFIG, overrides(out, num_samples))
    samples = Runner(config).load_samples()
    symbolic = SymbolicClevrGenerator.from_config(config)
    llm = LLMProgramGenerator(config, client=None)  # only its cache keys are used
    names = list(HOSTILE)
    hostile: dict[str, str] = {}
    entries = {}
    for i, sample in enumerate(samples):
        if i % every == every - 1:
            name = names[len(hostile) % len(names)]
            source, hostile[sample.id] = HOSTILE[name], name
        else:
            source = symbolic.program_for(sample).source
        problems = check_program(source)
        assert not problems, (sample.id, problems)  # a cached program that fails the checks is regenerated
        prompt = llm.prompts.render(llm.default_task, sample.question)
        key = llm.key_for(sample.question, prompt)
        program = Program(source, origin="generated", object_names=["object"])
        entries[key] = llm._entry(sample.question, llm.default_task, program)
    path = out / "programs.json"
    path.unlink(missing_ok=True)
    ProgramCache(path).put_many(entries)
    return path, hostile


def config_time_limit(settings: dict[str, str]) -> float:
    return load_config(CONFIG, settings).executor.time_limit_s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/neptune_hostile_demo")
    ap.add_argument("--num_samples", type=int, default=60)
    ap.add_argument("--every", type=int, default=3, help="every k-th question gets a hostile program")
    ap.add_argument("--write_only", action="store_true")
    ap.add_argument(
        "--lift_interpreter_limits",
        action="store_true",
        help="lift the interpreter's size and operation limits: only the sandbox process stops the programs",
    )
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache, hostile = write_cache(out, args.num_samples, args.every)
    command = [sys.executable, str(ROOT / "run.py"), "--config", str(CONFIG)]
    settings = overrides(out, args.num_samples, args.lift_interpreter_limits)
    for key, value in settings.items():
        command += [f"--{key}", value]
    print(f"{len(hostile)} of {args.num_samples} questions have hostile programs; cache: {cache}")
    print(" ".join(command))
    if args.write_only:
        return 0
    run_dir = out / "runs" / settings["run_name"]
    (run_dir / "results.jsonl").unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, timeout=1800)
    print(f"run.py exited with code {proc.returncode} after {time.perf_counter() - t0:.1f} s")
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    problems = []
    for row in rows:
        if row["id"] in hostile:
            err = row.get("error")
            print(f"  hostile {hostile[row['id']]:<18} -> {err['type'] if err else 'NO ERROR'}: "
                  f"{(err or {}).get('message', '')[:90]!s} ({row['timings'].get('total', 0):.0f} ms)")  # fmt: skip
            if not err and not args.lift_interpreter_limits:  # lifted, some become legitimate bounded work
                problems.append(f"{row['id']} ({hostile[row['id']]}) was not recorded as an error")
            if row["timings"].get("total", 0) > 2000 * config_time_limit(settings):
                problems.append(f"{row['id']} ({hostile[row['id']]}) took longer than twice the time limit")
        elif row.get("error") or row.get("correct") is not True:
            problems.append(f"ordinary sample {row['id']} is not correct: {row.get('error') or row.get('pred')}")
    if len(rows) != args.num_samples:
        problems.append(f"{len(rows)} rows for {args.num_samples} questions")
    if not (run_dir / "report" / "index.html").is_file():
        problems.append("no report was written")
    ordinary = len(rows) - len(hostile)
    print(f"{len(rows)} rows: {len(hostile)} hostile (all errors: {not any('hostile' in p for p in problems)}), "
          f"{ordinary} ordinary (all correct: {not any('ordinary' in p for p in problems)})")  # fmt: skip
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
