"""Open-vocabulary detectors through transformers' native classes: ``dino`` / ``dino_tiny``
(Grounding DINO, ``GroundingDinoForObjectDetection``), ``owlv2`` (``Owlv2ForObjectDetection``)
and ``florence`` / ``florence_base`` (``Florence2ForConditionalGeneration``: phrase grounding
per object name, plain ``<OD>`` when no names are given).

All return xyxy pixel boxes filtered by ``od_box_threshold`` (Grounding DINO also uses
``od_text_threshold``) and class-wise non-maximum suppression at ``od_nms_iou``
(torchvision is not needed: :func:`nms` is plain torch). Weights load lazily, once.
Florence-2 generates boxes without scores; they get score 1.0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from neptune_core.types import Detection
from vision_agents.aliases import resolve_detector
from vision_agents.availability import PretrainedWeights
from vision_agents.base import Detector
from vision_agents.devices import load_model, load_pretrained, to_model

if TYPE_CHECKING:
    from neptune_core.config import RunConfig


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of xyxy boxes (N, 4) x (M, 4)."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-9)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou: float) -> list[int]:
    """Greedy NMS: indices kept, highest score first."""
    order = scores.argsort(descending=True).tolist()
    keep: list[int] = []
    ious = box_iou(boxes, boxes)
    for i in order:
        if all(ious[i, k] <= iou for k in keep):
            keep.append(i)
    return keep


def filter_detections(
    boxes: torch.Tensor, scores: torch.Tensor, labels: list[str], threshold: float, iou: float
) -> Detection:
    """Drop boxes under ``threshold``; class-wise NMS; sorted by score."""
    keep_all: list[int] = []
    for label in dict.fromkeys(labels):
        idx = [i for i, lab in enumerate(labels) if lab == label and float(scores[i]) >= threshold]
        if idx:
            kept = nms(boxes[idx], scores[idx], iou)
            keep_all.extend(idx[k] for k in kept)
    keep_all.sort(key=lambda i: -float(scores[i]))
    return Detection(
        boxes=[[float(v) for v in boxes[i]] for i in keep_all],
        scores=[float(scores[i]) for i in keep_all],
        labels=[labels[i] for i in keep_all],
    )


class HFDetector(PretrainedWeights, Detector):
    """Shared loading and filtering; subclasses implement :meth:`raw_detect`."""

    weights_setting = "od_model"

    auto_model = "AutoModelForZeroShotObjectDetection"

    def __init__(
        self,
        model_id: str,
        *,
        box_threshold: float = 0.35,
        text_threshold: float = 0.25,
        nms_iou: float = 0.5,
        device: str = "auto",
        trust_remote_code: bool = False,
        model: Any = None,
        processor: Any = None,
    ) -> None:
        self.model_id = model_id
        self.box_threshold = box_threshold
        self.text_threshold = text_threshold
        self.nms_iou = nms_iou
        self.device_setting = device
        self.trust_remote_code = trust_remote_code
        self.model = model
        self.processor = processor

    @classmethod
    def from_config(cls, config: RunConfig) -> HFDetector:
        spec = resolve_detector(config.od_model)
        det = cls(
            spec.model_id,
            box_threshold=config.od_box_threshold,
            text_threshold=config.od_text_threshold,
            nms_iou=config.od_nms_iou,
            device=config.device,
            trust_remote_code=spec.trust_remote_code,
        )
        det.name = config.od_model
        return det

    def _load(self) -> None:
        import transformers

        if self.processor is None:
            self.processor = load_pretrained(
                transformers.AutoProcessor.from_pretrained, self.model_id, trust_remote_code=self.trust_remote_code
            )
        if self.model is None:
            self.model = load_model(
                getattr(transformers, self.auto_model),
                self.model_id,
                self.device_setting,
                trust_remote_code=self.trust_remote_code,
            )

    def raw_detect(self, image: Image.Image, object_names: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        raise NotImplementedError

    def detect(self, image: Image.Image, object_names: list[str]) -> Detection:
        self.load()
        names = [n.strip() for n in object_names if n.strip()]
        boxes, scores, labels = self.raw_detect(image.convert("RGB"), names)
        boxes = boxes.float().cpu().reshape(-1, 4).clone()
        w, h = image.size
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        return filter_detections(boxes, scores.float().cpu(), labels, self.box_threshold, self.nms_iou)


class GroundingDinoDetector(HFDetector):
    """Grounding DINO prompted with "name1. name2." (lower case, as the model was trained)."""

    def raw_detect(self, image: Image.Image, object_names: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        if not object_names:
            raise ValueError("Grounding DINO needs at least one object name to look for")
        text = " ".join(f"{n.lower()}." for n in object_names)
        enc = self.processor(images=image, text=text, return_tensors="pt")
        with torch.inference_mode():
            out = self.model(**to_model(enc, self.model))
        res = self.processor.post_process_grounded_object_detection(
            out,
            enc["input_ids"],
            threshold=self.box_threshold,
            text_threshold=self.text_threshold,
            target_sizes=[image.size[::-1]],
        )[0]
        labels = [str(x) for x in res.get("text_labels", res["labels"])]
        return res["boxes"], res["scores"], labels


class Owlv2Detector(HFDetector):
    """OWLv2 with one text query per object name ("a photo of a <name>")."""

    def raw_detect(self, image: Image.Image, object_names: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        if not object_names:
            raise ValueError("OWLv2 needs at least one object name to look for")
        queries = [[f"a photo of a {n}" for n in object_names]]
        enc = self.processor(text=queries, images=image, return_tensors="pt")
        with torch.inference_mode():
            out = self.model(**to_model(enc, self.model))
        # OWLv2 pads the image to a square: boxes are relative to the padded side
        side = max(image.size)
        res = self.processor.post_process_grounded_object_detection(
            out, threshold=self.box_threshold, target_sizes=[(side, side)]
        )[0]
        labels = [object_names[int(i)] for i in res["labels"]]
        return res["boxes"], res["scores"], labels


class Florence2Detector(HFDetector):
    """Florence-2: ``<CAPTION_TO_PHRASE_GROUNDING>`` per name, or ``<OD>`` with no names."""

    auto_model = "AutoModelForImageTextToText"

    def _run(self, image: Image.Image, task: str, text: str = "") -> dict[str, Any]:
        enc = self.processor(text=task + text, images=image, return_tensors="pt")
        with torch.inference_mode():
            gen = self.model.generate(**to_model(enc, self.model), max_new_tokens=256, num_beams=1, do_sample=False)
        decoded = self.processor.batch_decode(gen, skip_special_tokens=False)[0]
        return self.processor.post_process_generation(decoded, task=task, image_size=image.size)[task]

    def raw_detect(self, image: Image.Image, object_names: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        boxes: list[list[float]] = []
        labels: list[str] = []
        if object_names:
            for name in object_names:
                res = self._run(image, "<CAPTION_TO_PHRASE_GROUNDING>", name)
                boxes += res["bboxes"]
                labels += [name] * len(res["bboxes"])
        else:
            res = self._run(image, "<OD>")
            boxes, labels = list(res["bboxes"]), list(res["labels"])
        t = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        return t, torch.ones(len(t)), labels
