"""Detectors: NMS and thresholds (pure torch), a tiny random OWLv2 end to end, loading errors."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from neptune_core.config import RunConfig  # noqa: E402
from neptune_core.errors import ModelUnavailableError  # noqa: E402
from tests.test_vlm_tiny_models import make_tokenizer, marked_scene  # noqa: E402
from vision_agents import DETECTORS  # noqa: E402
from vision_agents.hf_detectors import (  # noqa: E402
    GroundingDinoDetector,
    Owlv2Detector,
    box_iou,
    filter_detections,
    nms,
)


def test_nms_and_thresholds() -> None:
    boxes = torch.tensor(
        [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10], [50, 50, 60, 60]], dtype=torch.float
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.2])
    labels = ["cube", "cube", "cube", "sphere", "cube"]
    assert box_iou(boxes[:1], boxes[1:2]).item() == pytest.approx(81 / 119)
    assert nms(boxes[:3], scores[:3], 0.5) == [0, 2]
    det = filter_detections(boxes, scores, labels, threshold=0.3, iou=0.5)
    # box 1 suppressed by box 0 (same class); box 3 kept (other class); box 4 under threshold
    assert det.scores == pytest.approx([0.9, 0.7, 0.6]) and det.labels == ["cube", "cube", "sphere"]
    assert det.boxes[2] == [0.0, 0.0, 10.0, 10.0]
    assert filter_detections(boxes, scores, labels, threshold=0.3, iou=0.9).scores == pytest.approx(
        [0.9, 0.8, 0.7, 0.6]
    )


def tiny_owlv2() -> tuple[object, object]:
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2Processor
    from transformers.models.owlv2.image_processing_pil_owlv2 import Owlv2ImageProcessorPil

    tok = make_tokenizer(["<s>", "</s>", "photo"], eos_token="</s>", bos_token="<s>")
    proc = Owlv2Processor(image_processor=Owlv2ImageProcessorPil(size={"height": 32, "width": 32}), tokenizer=tok)
    ids = tok.convert_tokens_to_ids
    text = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        max_position_embeddings=16,
        eos_token_id=ids("</s>"),
        bos_token_id=ids("<s>"),
        pad_token_id=0,
    )
    vision = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, image_size=32, patch_size=8
    )
    torch.manual_seed(0)
    return Owlv2ForObjectDetection(Owlv2Config(text_config=text, vision_config=vision, projection_dim=32)).eval(), proc


def test_tiny_owlv2_end_to_end() -> None:
    model, proc = tiny_owlv2()
    image = marked_scene(0, (64, 48))
    det = Owlv2Detector("tiny", box_threshold=0.0, nms_iou=0.3, device="cpu", model=model, processor=proc)
    out = det.detect(image, ["cube", "sphere"])
    assert 0 < len(out.boxes) <= 2 * 16  # 16 patches, one query set
    assert set(out.labels) <= {"cube", "sphere"} and out.scores == sorted(out.scores, reverse=True)
    b = torch.tensor(out.boxes)
    assert (b[:, 0] >= 0).all() and (b[:, 2] <= 64).all() and (b[:, 1] >= 0).all() and (b[:, 3] <= 48).all()
    for lab in set(out.labels):
        same = b[[i for i, x in enumerate(out.labels) if x == lab]]
        iou = box_iou(same, same) - torch.eye(len(same))
        assert (iou <= 0.3 + 1e-6).all()
    strict = Owlv2Detector("tiny", box_threshold=1.01, device="cpu", model=model, processor=proc)
    assert strict.detect(image, ["cube"]).boxes == []
    with pytest.raises(ValueError, match="object name"):
        det.detect(image, [])


def test_config_and_missing_weights() -> None:
    cfg = RunConfig(od_model="dino_tiny", od_box_threshold=0.4, od_text_threshold=0.3, od_nms_iou=0.6, device="cpu")
    det = DETECTORS.get("dino_tiny").from_config(cfg)
    assert isinstance(det, GroundingDinoDetector) and det.model_id == "IDEA-Research/grounding-dino-tiny"
    assert (det.box_threshold, det.text_threshold, det.nms_iou) == (0.4, 0.3, 0.6)
    with pytest.raises(ModelUnavailableError, match="IDEA-Research/grounding-dino-tiny") as err:
        det.detect(marked_scene(), ["cube"])
    assert "\n" not in str(err.value)
    assert (
        DETECTORS.get("florence").from_config(RunConfig(od_model="florence")).model_id.startswith("florence-community/")
    )
