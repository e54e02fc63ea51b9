"""Oracle masks and depths read from the synthetic world's scenes: ``segmenter: scene_masks`` and
``depth_model: scene_depth``. Not models: they read the exact per-pixel object ids and depths
of the sample's scene (local_datasets/synthetic/annotations.py), for tests, the offline demo and
upper-bound runs, so the mask and depth paths run end to end without a download.

Boxes -> scene objects as the scene oracle does it (vision_agents/oracle.py): the sample's own
boxes (or the scene's) in scene order are the objects in order; any other box is the object
whose box overlaps it most (IoU). A box that overlaps no object gets an empty mask (it is then
marked by its box) and, for ``exact`` depths, is an error.

``scene_masks``: the object's *visible* mask (what a segmenter can see). ``scene_depth``: the
depth along the viewing axis at every pixel (a ``distance`` map, floor included); with
``depth.reduce: exact`` each object's depth is that of its centre (``pixel_coords[2]``), which
official CLEVR scenes have too.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from neptune_core.errors import UserError
from neptune_core.types import Box, Sample, box_iou
from vision_agents.depth import DepthEstimator
from vision_agents.segmenters import Segmenter

if TYPE_CHECKING:
    from local_datasets.synthetic.annotations import SceneMaps
    from neptune_core.config import RunConfig

_KEEP = 8  # scenes whose maps are kept


class _SceneReader:
    """The current sample's scene, its maps (computed once per scene) and box -> object matching."""

    what = "scene oracle"

    def __init__(self) -> None:
        self._sample: Sample | None = None
        self._maps: OrderedDict[tuple, SceneMaps] = OrderedDict()

    def begin_sample(self, sample: Sample) -> None:
        self._sample = sample

    def _scene(self) -> dict:
        sample = self._sample
        if sample is None:
            raise RuntimeError(f"{self.name}: begin_sample(sample) must be called first")  # type: ignore[attr-defined]
        if not isinstance(sample.scene, dict) or "objects" not in sample.scene:
            raise UserError(f"sample {sample.id} has no scene annotations; {self.name} needs the synthetic world")  # type: ignore[attr-defined]
        return sample.scene

    def check_samples(self, samples: Sequence[Sample]) -> None:
        if samples:
            self._sample = samples[0]
            self._check_scene(self._scene())

    def _check_scene(self, scene: dict) -> None:
        if "camera" not in scene:
            raise UserError(
                f"{self.name} needs scenes of the synthetic world (with a camera: dataset clevr_synthetic, or data "  # type: ignore[attr-defined]
                "written by python -m local_datasets.synthetic); this dataset's scenes have none"
            )

    def maps(self) -> SceneMaps:
        from local_datasets.synthetic.annotations import scene_maps

        scene = self._scene()
        self._check_scene(scene)
        key = (id(scene), scene.get("split"), scene.get("image_index"), scene.get("image_filename"))
        if key not in self._maps:
            self._maps[key] = scene_maps(scene)
            while len(self._maps) > _KEEP:
                self._maps.popitem(last=False)
        self._maps.move_to_end(key)
        return self._maps[key]

    def object_indices(self, boxes: list[Box]) -> list[int | None]:
        """The scene object of each box (None: it overlaps none)."""
        scene, sample = self._scene(), self._sample
        assert sample is not None
        objects = scene["objects"]
        own = [list(map(float, b)) for b in sample.boxes] if sample.boxes is not None else None
        if own is None or len(own) != len(objects):
            own = [list(map(float, o["bbox"])) for o in objects] if all("bbox" in o for o in objects) else []
        if own and len(boxes) == len(own) and all(list(map(float, b)) == o for b, o in zip(boxes, own, strict=True)):
            return list(range(len(own)))
        out: list[int | None] = []
        for b in boxes:
            overlaps = [box_iou(list(map(float, b)), o) for o in own]
            best = max(range(len(own)), key=overlaps.__getitem__) if own else -1
            out.append(best if best >= 0 and overlaps[best] > 0.0 else None)
        return out


class SceneMaskSegmenter(_SceneReader, Segmenter):
    """``scene_masks``: each box's object's exact visible mask."""

    name = "scene_masks"

    def segment(self, image: Image.Image, boxes: list[Box]) -> list[np.ndarray]:
        maps = self.maps()
        if maps.object_ids.shape != (image.size[1], image.size[0]):
            raise ValueError(f"{self.name}: the scene was rendered at {maps.object_ids.shape[::-1]}, not {image.size}")
        empty = np.zeros(maps.object_ids.shape, dtype=bool)
        return [empty.copy() if k is None else maps.mask(k) for k in self.object_indices(boxes)]


class SceneDepth(_SceneReader, DepthEstimator):
    """``scene_depth``: the exact depth map (distances along the viewing axis), or exact object depths."""

    name = "scene_depth"
    kind = "distance"

    def __init__(self, *, exact: bool = False) -> None:
        super().__init__()
        self.exact = exact  # the run reads exact object depths (depth.reduce: exact), not the map

    @classmethod
    def from_config(cls, config: RunConfig) -> SceneDepth:
        return cls(exact=config.depth.reduce == "exact")

    def depth_map(self, image: Image.Image) -> np.ndarray:
        depth = self.maps().depth
        if depth.shape != (image.size[1], image.size[0]):
            raise ValueError(f"{self.name}: the scene was rendered at {depth.shape[::-1]}, not {image.size}")
        return depth

    def exact_depths(self, image: Image.Image, boxes: list[Box]) -> list[float]:
        objects = self._scene()["objects"]
        out = []
        for b, k in zip(boxes, self.object_indices(boxes), strict=True):
            if k is None:
                raise ValueError(f"{self.name}: box {b} overlaps no scene object, so it has no exact depth")
            out.append(float(objects[k]["pixel_coords"][2]))
        return out

    def check_samples(self, samples: Sequence[Sample]) -> None:
        if not self.exact:
            super().check_samples(samples)
        elif samples:  # exact depths need only each object's pixel_coords (official CLEVR scenes have them too)
            self._sample = samples[0]
            if not all(len(o.get("pixel_coords", ())) == 3 for o in self._scene()["objects"]):
                raise UserError(f"{self.name} with depth.reduce 'exact' needs scenes whose objects have pixel_coords")


__all__ = ["SceneDepth", "SceneMaskSegmenter"]
