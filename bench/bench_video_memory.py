"""A video far larger than memory, processed end to end under a memory cap: peak RSS is what one frame costs.

    python bench/bench_video_memory.py [--minutes 8] [--width 1280] [--height 720] [--fps 25] [--memory_mb 2048]

1. Writes (once, into ``--dir``) a grey 1280x720, 25 fps video of ``--minutes`` minutes with a white
   bar sweeping across and a red square shown for 30 s in the second half (tests/video_fakes.py):
   8 minutes are 12,000 frames, about 33 GB as decoded RGB (the machine has 24 GB), a few MB on disk.
2. In a child process whose private memory is capped at ``--memory_mb`` (RLIMIT_DATA), runs one
   multiple-choice question ("Does a red square appear?") through runners/run_video.py: VLAgent's
   chunk selection (captions by the ``openai_vlm`` captioner and relevance by an LLM, both played
   by the fake OpenAI-compatible server of tests/), frames decoded by timestamp (scaled to 640 px),
   the classic detector and agent on the chosen chunk, a program over frames.
3. Prints the video's size, the decoded size, the cap, the child's peak resident memory
   (ru_maxrss), the frames the decoder decoded, the chunk chosen and the answer.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROGRAM = """def execute(score, query, n):
    options = ["yes", "no"]
    red = score_frames("Is there a red square?")
    return 0 if red.exists("t").item() > 0.5 else 1
"""


def _child(args: argparse.Namespace) -> int:
    cap = args.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (cap, resource.getrlimit(resource.RLIMIT_DATA)[1]))
    from local_datasets.multiple_choice import mc_meta, with_options
    from neptune_core.config import load_config
    from neptune_core.types import Sample
    from neptune_core.video import VideoRef
    from runners.run_video import VideoRunner
    from tests.fake_openai_server import FakeOpenAIServer
    from tests.video_fakes import video_responder

    server = FakeOpenAIServer().start()
    server.responder = video_responder
    config = load_config(
        None,
        {
            "dataset": "nextqa",
            "vlm_model_name": "classic",
            "od_model": "classic",
            "program_generator": "given",
            "code_gen_provider": "vllm",
            "code_gen_base_url": server.base_url,
            "code_gen_model_name": "fake-model",
            "output_dir": str(Path(args.dir) / "runs"),
            "report": "false",
            "video.frames_per_chunk": "8",
            "video.min_fps": str(args.min_fps),
            "video.max_frames": "16",
            "video.captioner": "openai_vlm",
            "video.captioner_base_url": server.base_url,
            "video.select_models": "fake-model",
        },
    )
    question, options = "Does a red square appear in the video?", ["yes", "no"]
    sample = Sample(
        id="long_video",
        question=with_options(question, options),
        answer="yes",
        video=VideoRef(str(Path(args.dir) / "long.mp4")),
        program=PROGRAM,
        meta=mc_meta(question, options, 0, family="bench"),
    )
    runner = VideoRunner(config)
    t0 = time.perf_counter()
    runner.prepare([sample])
    row = runner.process(sample)
    seconds = time.perf_counter() - t0
    reader = runner._reader
    out = {
        "outcome": row["outcome"],
        "error": row["error"],
        "pred": row["pred"],
        "correct": row["correct"],
        "chunks": len(row["video"]["selection"]["chunks"]),
        "chosen": [row["video"]["selection"]["chunks"][c] for c in row["video"]["selection"].get("chosen", [])],
        "decision": row["video"]["selection"].get("decision"),
        "rounds": len(row["video"]["selection"].get("rounds", [])),
        "frames_seen_by_program": len(row["video"]["frames"]),
        "frames_decoded": reader.decoded if reader else None,
        "seeks": reader.seeks if reader else None,
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "llm_requests": server.request_count,
    }
    runner.executor.close()
    server.stop()
    print(json.dumps(out))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--min_fps", type=float, default=0.1, help="video.min_fps (sets the number of chunks)")
    p.add_argument("--memory_mb", type=int, default=2048, help="RLIMIT_DATA of the process that runs the question")
    p.add_argument("--dir", default="/tmp/neptune-long-video")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args)
    from tests.video_fakes import make_event_video

    seconds = args.minutes * 60
    event = (seconds * 0.6, seconds * 0.6 + 30)
    path = Path(args.dir) / "long.mp4"
    meta_path = Path(args.dir) / "long.json"
    wanted = {"seconds": seconds, "fps": args.fps, "size": [args.width, args.height], "event": list(event)}
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if meta.get("wanted") != wanted or not path.is_file():
        t0 = time.perf_counter()
        info = make_event_video(path, seconds, args.fps, (args.width, args.height), event, gop=250)
        meta = {"wanted": wanted, **info, "encode_s": round(time.perf_counter() - t0, 1)}
        meta_path.write_text(json.dumps(meta))
    child = subprocess.run(
        [sys.executable, __file__, "--child", *sys.argv[1:]]
        if argv is None
        else [sys.executable, __file__, "--child", *argv],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
    )
    if child.returncode != 0:
        print(child.stderr[-3000:], file=sys.stderr)
        return child.returncode
    result = json.loads(child.stdout.strip().splitlines()[-1])
    gb = meta["decoded_bytes"] / 1e9
    print(f"video: {args.minutes:g} min, {args.width}x{args.height} @ {args.fps} fps, {meta['frames']} frames; "
          f"{meta['file_bytes'] / 1e6:.1f} MB on disk (encoded in {meta.get('encode_s', '?')} s), "
          f"{gb:.1f} GB decoded; red square at {event[0]:.0f}-{event[1]:.0f} s")  # fmt: skip
    print(f"memory cap (RLIMIT_DATA): {args.memory_mb} MB; peak RSS of the run: {result['peak_rss_mb']} MB")
    print(f"chunks: {result['chunks']}, chosen: {result['chosen']} ({result['decision']}; {result['rounds']} round(s))")
    print(f"frames decoded: {result['frames_decoded']} ({result['seeks']} seeks); program saw "
          f"{result['frames_seen_by_program']}; LLM/caption requests: {result['llm_requests']}")  # fmt: skip
    print(
        f"answer: {result['pred']} (correct: {result['correct']}, outcome {result['outcome']}); {result['seconds']} s"
    )
    if result["error"]:
        print(f"error: {result['error']}")
    return 0 if result["outcome"] == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
