"""SAM and SAM 2 through transformers (``SamModel``, ``Sam2Model``), prompted with boxes.

``segmenter``: ``sam_base`` / ``sam_large`` / ``sam_huge`` (facebook/sam-vit-*), ``sam2_tiny`` /
``sam2_small`` / ``sam2_base`` / ``sam2_large`` (facebook/sam2.1-hiera-*), or any hub id or local
directory of a SAM-family checkpoint. The model class comes from the checkpoint's ``model_type``
through ``AutoModelForMaskGeneration`` (sam -> ``SamModel``; sam2 and sam2_video -> ``Sam2Model``);
the processor is ``SamProcessor`` for SAM and ``Sam2Processor`` for SAM 2 (the hub's SAM 2.1
repositories name a video processor, which image segmentation does not need), else
``AutoProcessor``.

Per image: the image encoder runs once (its embeddings are kept for the last
``EMBEDDING_IMAGES`` images), then the prompt encoder and mask decoder run on all the
image's boxes at once (``multimask_output=False``: one mask per box), and the low-resolution
masks are brought back to the image's size by the processor's ``post_process_masks``.
Weights load lazily, once; ``preflight`` loads them.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from neptune_core.errors import ModelUnavailableError
from neptune_core.types import Box
from vision_agents.availability import PretrainedWeights
from vision_agents.devices import load_model, load_pretrained, to_model
from vision_agents.memo import image_fingerprint
from vision_agents.segmenters import Segmenter

if TYPE_CHECKING:
    from neptune_core.config import RunConfig

SEGMENTER_ALIASES: dict[str, str] = {
    "sam_base": "facebook/sam-vit-base",
    "sam_large": "facebook/sam-vit-large",
    "sam_huge": "facebook/sam-vit-huge",
    "sam2_tiny": "facebook/sam2.1-hiera-tiny",
    "sam2_small": "facebook/sam2.1-hiera-small",
    "sam2_base": "facebook/sam2.1-hiera-base-plus",
    "sam2_large": "facebook/sam2.1-hiera-large",
}
_PROCESSORS = {"sam": "SamProcessor", "sam2": "Sam2Processor", "sam2_video": "Sam2Processor"}
EMBEDDING_IMAGES = 2
BOX_CHUNK = 64  # boxes per mask-decoder pass


class HFSegmenter(PretrainedWeights, Segmenter):
    """A SAM-family model prompted with boxes. Pass ``model`` / ``processor`` to use built objects."""

    weights_setting = "segmenter"

    name = "sam"

    def __init__(
        self, model_id: str, *, device: str = "auto", model: Any = None, processor: Any = None, threshold: float = 0.0
    ) -> None:
        self.model_id = model_id
        self.device_setting = device
        self.model = model
        self.processor = processor
        self.threshold = threshold  # on the mask logits
        self.forward_passes = 0  # image-encoder runs (decoder passes are not counted)
        self._embeddings: OrderedDict[str, Any] = OrderedDict()

    @classmethod
    def from_config(cls, config: RunConfig) -> HFSegmenter:
        seg = cls(SEGMENTER_ALIASES.get(config.segmenter, config.segmenter), device=config.device)
        seg.name = config.segmenter
        return seg

    # ---- loading (check_available, preflight, load: PretrainedWeights) ----------------
    def _load(self) -> None:
        import transformers

        if self.model is None:
            self.model = load_model(transformers.AutoModelForMaskGeneration, self.model_id, self.device_setting)
        if self.processor is None:
            kind = _PROCESSORS.get(getattr(self.model.config, "model_type", ""), "AutoProcessor")
            if kind == "Sam2Processor" and not transformers.utils.is_torchvision_available():
                raise ModelUnavailableError(
                    f"segmenter '{self.model_id}': SAM 2's image processor (Sam2ImageProcessor) needs torchvision; "
                    f"install the torchvision build that matches torch {torch.__version__}"
                )
            self.processor = load_pretrained(getattr(transformers, kind).from_pretrained, self.model_id)

    # ---- masks -------------------------------------------------------------------------
    def _embeddings_of(self, image: Image.Image, pixel_values: torch.Tensor) -> Any:
        """The image encoder's output for ``image`` (run once per image; the last few images kept)."""
        key = image_fingerprint(image)
        if key not in self._embeddings:
            with torch.inference_mode():
                self.forward_passes += 1
                self._embeddings[key] = self.model.get_image_embeddings(to_model({"p": pixel_values}, self.model)["p"])
            while len(self._embeddings) > EMBEDDING_IMAGES:
                self._embeddings.popitem(last=False)
        self._embeddings.move_to_end(key)
        return self._embeddings[key]

    def segment(self, image: Image.Image, boxes: list[Box]) -> list[np.ndarray]:
        self.load()
        if not boxes:
            return []
        rgb = image.convert("RGB")
        enc = self.processor(images=rgb, input_boxes=[[[float(v) for v in b] for b in boxes]], return_tensors="pt")
        emb = self._embeddings_of(image, enc["pixel_values"])
        sizes = [enc[k] for k in ("original_sizes", "reshaped_input_sizes") if k in enc]
        out: list[np.ndarray] = []
        for start in range(0, len(boxes), BOX_CHUNK):
            prompt = to_model({"b": enc["input_boxes"][:, start : start + BOX_CHUNK]}, self.model)["b"]
            with torch.inference_mode():
                pred = self.model(image_embeddings=emb, input_boxes=prompt, multimask_output=False).pred_masks
            masks = self.processor.post_process_masks(pred.float().cpu(), *sizes, mask_threshold=self.threshold)
            out += [m[0].numpy().astype(bool) for m in masks[0]]  # (boxes, 1, H, W): one (H, W) mask per box
        return out


__all__ = ["SEGMENTER_ALIASES", "HFSegmenter"]
