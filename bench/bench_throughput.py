"""End-to-end throughput on synthetic CLEVR questions: questions per second and model calls per question, eager vs lazy.

    python bench/bench_throughput.py                                  # CPU: the tiny InternVL of the tests
    python bench/bench_throughput.py --model internvl2_5_8b --device cuda --scenes 10   # a GPU

A VLM of a real model's size needs no trained weights to be timed: ``--model internvl2_5_8b``
builds InternVL2.5-8B's architecture from its configuration (InternViT-300M-448px vision
tower, 0.5 pixel-shuffle projector, InternLM2.5-7B-sized decoder: 32 layers, hidden 4096,
GQA 32/8 heads, MLP 14336, vocabulary 92553; 448 px tiles with up to ``--max_tiles``
tiles plus a thumbnail, 256 tokens each) with random weights in bfloat16 on ``--device``.
``--model tiny`` (the default) is the one-layer model of tests/test_vlm_tiny_models.py.
Nothing is downloaded: the tokenizer is the tests' word-level one, the processor the
transformers InternVL one.

The same questions (``--scenes`` synthetic CLEVR scenes x 10 questions, ground-truth boxes,
ground-truth programs) run twice through the run loop (runners/base.py):

- eager: every ``score(q, 2)`` evaluates all n x n pairs, one memo per question, each box's
  mark drawn with PIL and preprocessed on its own, questions in dataset order;
- lazy: the defaults (config ``calls``): lazy relations, one memo per image, tensor marks,
  questions grouped by image.

It prints questions per second, box evaluations per question (by arity), forward passes and
processor runs per question, and how many answers the two runs share (random weights: the
answers are meaningless, but the two paths should mostly agree; tensor marks move p(yes) a little).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EAGER = {
    "calls.lazy_relations": "false",
    "calls.memo_images": "0",
    "calls.tensor_marking": "false",
    "calls.group_by_image": "false",
    "calls.detection_cache_images": "0",
}


def internvl2_5_8b(device: str, max_tiles: int) -> tuple[Any, Any]:
    """InternVL2.5-8B's architecture with random weights (bfloat16), and a processor for it."""
    import torch
    from transformers import InternVLConfig, InternVLForConditionalGeneration, InternVLProcessor
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    from tests.test_vlm_tiny_models import chat_template, make_tokenizer, no_video

    specials = ["<s>", "</s>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"]
    tok = make_tokenizer(specials, eos_token="</s>", extra_special_tokens={
        "start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
        "video_token": "<video>"})  # fmt: skip
    ip = GotOcr2ImageProcessorPil(size={"height": 448, "width": 448}, crop_to_patches=max_tiles > 1,
                                  max_patches=max_tiles)  # fmt: skip
    proc = no_video(InternVLProcessor)(image_processor=ip, tokenizer=tok, video_processor=None, image_seq_length=256,
                                       chat_template=chat_template("<IMG_CONTEXT>"))  # fmt: skip
    vision = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                  image_size=[448, 448], patch_size=[14, 14], use_qk_norm=False)  # fmt: skip
    text = dict(model_type="llama", vocab_size=92553, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=32768, rope_theta=1e6)  # fmt: skip
    cfg = InternVLConfig(vision_config=vision, text_config=text, downsample_ratio=0.5,
                         image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"))  # fmt: skip
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = InternVLForConditionalGeneration(cfg).eval()
    finally:
        torch.set_default_dtype(torch.float32)
    return model, proc


def run_once(overrides: dict[str, str], model: Any, proc: Any, scenes: int, device: str, out: Path) -> dict[str, Any]:
    from neptune_core.config import load_config
    from runners import RUNNERS
    from runners.results import read_results
    from vision_agents.hf_vlm import HFVisionAgent

    cfg = load_config("configs/clevr-mini-oracle.json", {
        "synthetic.num_scenes": str(scenes), "report": "false", "output_dir": str(out), **overrides})  # fmt: skip
    agent = HFVisionAgent("bench", device=device, batch_size=cfg.vlm_batch_size, model=model, processor=proc,
                          tensor_marking=cfg.calls.tensor_marking)  # fmt: skip
    runner = RUNNERS.get(cfg.dataset)(cfg, agent=agent)
    run_dir = out / ("lazy" if not overrides else "eager")
    run_dir.mkdir(parents=True)
    t0 = time.perf_counter()
    summary = runner.run(run_dir)
    seconds = time.perf_counter() - t0
    rows, _ = read_results(run_dir / "results.jsonl")
    n = len(rows)
    return {
        "questions": n,
        "seconds": seconds,
        "q_per_s": n / seconds,
        "calls": summary["model_calls"]["per_question"],
        "forward_per_q": agent.forward_passes / n,
        "processor_per_q": agent.processor_runs / n,
        "errors": summary["errors"]["total"],
        "preds": {r["id"]: r["pred"] for r in rows},
        "marking": agent.marking,
    }


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny", choices=["tiny", "internvl2_5_8b"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--scenes", type=int, default=4, help="synthetic CLEVR scenes (10 questions each)")
    ap.add_argument("--max_tiles", type=int, default=6, help="internvl2_5_8b: tiles per image (1 = the image alone)")
    args = ap.parse_args()

    torch.manual_seed(0)
    t0 = time.perf_counter()
    if args.model == "tiny":
        from tests.test_vlm_tiny_models import tiny_internvl

        model, proc = tiny_internvl()
        model = model.to(args.device)
    else:
        model, proc = internvl2_5_8b(args.device, args.max_tiles)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"model {args.model}: {params / 1e9:.2f} B parameters on {args.device}, built in {time.perf_counter() - t0:.1f} s"
    )
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for label, overrides in (("eager", EAGER), ("lazy", {})):
            results[label] = run_once(overrides, model, proc, args.scenes, args.device, Path(tmp))
    for label, r in results.items():
        c = r["calls"]
        print(
            f"{label:>5}: {r['questions']} questions in {r['seconds']:.1f} s = {r['q_per_s']:.2f} q/s; per question "
            f"{c['box_evals']:.2f} box evaluations (arity 1: {c['by_arity'].get('1', 0):.2f}, arity 2: "
            f"{c['by_arity'].get('2', 0):.2f}), {c['queries']:.2f} queries, {r['forward_per_q']:.2f} forward passes, "
            f"{r['processor_per_q']:.2f} processor runs; errors {r['errors']}"
        )
    eager, lazy = results["eager"], results["lazy"]
    same = sum(eager["preds"][i] == p for i, p in lazy["preds"].items())
    print(f"lazy over eager: {lazy['q_per_s'] / eager['q_per_s']:.2f}x questions per second, "
          f"{eager['calls']['box_evals'] / max(lazy['calls']['box_evals'], 1e-9):.2f}x fewer box evaluations; "
          f"same answer on {same}/{len(lazy['preds'])} questions; marking: {lazy['marking']}")  # fmt: skip


if __name__ == "__main__":
    main()
