"""Marking without re-preprocessing: marks drawn into the processor's pixel tensor.

Checked against the PIL path (mark the image, run the processor) on the tiny models of
tests/test_vlm_tiny_models.py: the outline is the pixels PIL draws, the resampling weights
are PIL's, an unmarked batch is exactly the processor's batch, marked pixels agree within
``PROBE_TOLERANCE`` of the normalised range on average, and scores within SCORE_TOLERANCE.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import random  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from tests.test_vlm_tiny_models import FAMILIES, marked_scene  # noqa: E402
from vision_agents import tensor_marking  # noqa: E402
from vision_agents.hf_vlm import HFVisionAgent, marked_batch  # noqa: E402
from vision_agents.marking import _check_box, line_width, mark_boxes  # noqa: E402
from vision_agents.tensor_marking import PROBE_TOLERANCE, TensorMarker, mark_mask, resample_weights  # noqa: E402

SCORE_TOLERANCE = 0.01  # |p(yes) tensor marks - p(yes) PIL marks| on the tiny models
SIZE = (96, 72)
BOXES = [[4.0, 6.0, 40.0, 50.0], [45.0, 8.0, 90.0, 60.0], [20.0, 30.0, 70.0, 70.0]]


def test_mark_mask_is_the_outline_pil_draws() -> None:
    rng = random.Random(0)
    for size in [(60, 50), (480, 320), (37, 90)]:
        w, h = size
        thin = [[10.0, 10.0, 12.0, 11.0], [5.0, 20.0, 30.0, 21.5], [3.3, 4.7, 4.1, 30.0], [0.0, 0.0, w, h]]
        for k in range(300):
            x1, y1 = rng.uniform(-5, w - 2), rng.uniform(-5, h - 2)
            box = thin[k] if k < len(thin) else [x1, y1, x1 + rng.uniform(5, w / 2), y1 + rng.uniform(5, h / 2)]
            canvas = Image.new("L", size, 0)
            ImageDraw.Draw(canvas).rectangle(_check_box(box, canvas), outline=255, width=line_width(canvas))
            want = np.asarray(canvas) > 0
            x0, y0, mask = mark_mask(box, size)
            got = np.zeros_like(want)
            got[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]] = mask > 0
            assert (got == want).all(), (size, box)


@pytest.mark.parametrize(
    "resample", [0, 1, 2, 3, 4, 5], ids=["nearest", "lanczos", "bilinear", "bicubic", "box", "hamming"]
)
@pytest.mark.parametrize("out", [23, 40, 121])
def test_resample_weights_are_pil_s(resample: int, out: int) -> None:
    signal = np.random.default_rng(resample).random((1, 57)).astype(np.float32)
    want = np.asarray(Image.fromarray(signal, "F").resize((out, 1), resample=resample))[0]
    scale = 57 / out
    centers = scale * (torch.arange(out, dtype=torch.float64) + 0.5)
    got = resample_weights(centers, scale, 57, 0, 57, resample) @ torch.from_numpy(signal[0]).double()
    if resample == 0:  # NEAREST picks one pixel; its coverage of a mark is read as BOX's
        return
    assert np.allclose(got.numpy(), want, atol=1e-4), np.abs(got.numpy() - want).max()


def _prompt(proc, question: str) -> str:  # type: ignore[no-untyped-def]
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model, proc = FAMILIES[request.param]()
    return request.param, model, proc


def test_marks_match_the_pil_path(family) -> None:  # type: ignore[no-untyped-def]
    name, _, proc = family
    image = marked_scene(2, size=SIZE)
    prompt = _prompt(proc, "Is the object in the red box a cube?")

    def encode(im):  # type: ignore[no-untyped-def]
        return proc(text=[prompt], images=[[im]], return_tensors="pt")

    marker, why = TensorMarker.probe(encode, proc.image_processor, SIZE)
    assert marker is not None, why
    base = encode(image)["pixel_values"]
    span = float(torch.stack([p.span.abs() for p in marker.planes]).mean())
    for subject, obj in [(BOXES[0], None), (BOXES[1], BOXES[2]), ([0.0, 0.0, 96.0, 72.0], None)]:
        ours = marker.mark(base, subject, obj)
        theirs = encode(mark_boxes(image, subject, obj))["pixel_values"]
        changed = (theirs - base).abs() > 1e-6
        assert changed.any()
        err = float((ours - theirs).abs()[changed].mean()) / span
        assert err <= PROBE_TOLERANCE, (name, subject, obj, err)
        stray = ~changed & ((ours - base).abs() > 0.05 * span)
        assert not stray.any()  # marks stay where PIL draws them (filter lobes aside)
    assert torch.equal(marker.mark(base), base)


def test_unmarked_batch_is_the_processor_s_batch(family) -> None:  # type: ignore[no-untyped-def]
    name, _, proc = family
    image = marked_scene(3, size=SIZE)
    prompts = [_prompt(proc, "Is it a cube?"), _prompt(proc, "Is the object in the red box the same color as it?")]
    encs = [proc(text=[p], images=[[image]], return_tensors="pt") for p in prompts]
    marker, why = TensorMarker.probe(lambda im: proc(text=[prompts[0]], images=[[im]], return_tensors="pt"),
                                     proc.image_processor, SIZE)  # fmt: skip
    assert marker is not None, why
    items = [(encs[1], ()), (encs[0], ()), (encs[1], ())]
    got = marked_batch(items, marker, proc.tokenizer.pad_token_id)
    want = proc(text=[prompts[1], prompts[0], prompts[1]], images=[[image]] * 3, padding=True, padding_side="right",
                return_tensors="pt")  # fmt: skip
    assert set(got) == set(want), name
    for key in want:
        assert torch.equal(got[key], want[key]), (name, key)


def test_scores_agree_with_pil_marking_and_preprocess_once(family) -> None:  # type: ignore[no-untyped-def]
    name, model, proc = family
    image = marked_scene(4, size=SIZE)
    questions = ["Is the object in the red box a cube?"]
    fast = HFVisionAgent("tiny", device="cpu", model=model, processor=proc, batch_size=16)
    slow = HFVisionAgent("tiny", device="cpu", model=model, processor=proc, batch_size=16, tensor_marking=False)
    for arity in (1, 2):
        a, b = fast.score(image, BOXES, questions, arity), slow.score(image, BOXES, questions, arity)
        assert (a - b).abs().max() <= SCORE_TOLERANCE, (name, arity, (a - b).abs().max())
    assert fast.marking == {f"{SIZE[0]}x{SIZE[1]}": fast.marking[f"{SIZE[0]}x{SIZE[1]}"]}
    assert fast.marking[f"{SIZE[0]}x{SIZE[1]}"].startswith("tensor:")
    before_fast, before_slow = fast.processor_runs, slow.processor_runs
    fast.score(image, BOXES, questions, 1)
    slow.score(image, BOXES, questions, 1)
    assert fast.processor_runs - before_fast == 1 and slow.processor_runs - before_slow == len(BOXES)


def test_a_processor_the_marker_cannot_read_falls_back_to_pil(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    model, proc = FAMILIES["llava"]()
    image = marked_scene(5, size=SIZE)

    def padded(im):  # type: ignore[no-untyped-def]
        pv = proc(text=["x <image>"], images=[[im]], return_tensors="pt")["pixel_values"]
        return {"pixel_values": torch.nn.functional.pad(pv, (2, 2, 2, 2), value=-1.0)}  # a constant border

    marker, why = TensorMarker.probe(padded, proc.image_processor, SIZE)
    assert marker is None and "padding" in why
    monkeypatch.setattr(tensor_marking.TensorMarker, "probe", classmethod(lambda cls, *a: (None, "not understood")))
    agent = HFVisionAgent("tiny", device="cpu", model=model, processor=proc)
    pil = HFVisionAgent("tiny", device="cpu", model=model, processor=proc, tensor_marking=False)
    q = ["Is the object in the red box a cube?"]
    assert torch.equal(agent.score(image, BOXES, q, 1), pil.score(image, BOXES, q, 1))
    assert agent.marking == {f"{SIZE[0]}x{SIZE[1]}": "PIL: not understood"}
