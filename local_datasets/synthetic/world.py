"""The synthetic world end to end: seeded scenes + images + questions, as Samples or files.

Every scene and its questions come from their own ``random.Random`` seeded by
``(seed, split, index)``, so scene i is the same whatever else is generated, and the
same seed gives byte-identical JSON. Scenes whose objects are too hidden or leave
the image are resampled, as CLEVR does.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from local_datasets.synthetic.annotations import camera_record
from local_datasets.synthetic.questions import generate_questions
from local_datasets.synthetic.reference_executor import family_of
from local_datasets.synthetic.render import render_scene
from local_datasets.synthetic.scene import compute_relationships, sample_camera, sample_objects
from neptune_core.config import SyntheticConfig
from neptune_core.errors import UserError
from neptune_core.types import Sample

MIN_VISIBLE_FRACTION = 0.35  # of the object's silhouette; CLEVR asks for >= 200 visible pixels
MIN_VISIBLE_PIXELS = 200 * (1 / (480 * 320))  # scaled by the image area


def image_filename(split: str, index: int) -> str:
    return f"CLEVR_{split}_{index:06d}.png"


def check_config(cfg: SyntheticConfig) -> None:
    """Raise UserError for settings the world cannot honour."""
    if not 1 <= cfg.min_objects <= cfg.max_objects <= 10:
        raise UserError(
            f"synthetic.min_objects/max_objects must satisfy 1 <= min <= max <= 10, got {cfg.min_objects}/{cfg.max_objects}"
        )
    if cfg.image_width < 64 or cfg.image_height < 48:
        raise UserError(f"synthetic image size must be at least 64x48, got {cfg.image_width}x{cfg.image_height}")
    if cfg.num_scenes < 0 or cfg.questions_per_scene < 0:
        raise UserError("synthetic.num_scenes and synthetic.questions_per_scene must be >= 0")


def make_scene(cfg: SyntheticConfig, split: str, index: int, supersample: int = 2) -> tuple[dict, Image.Image]:
    """Scene ``index`` of ``split``: the CLEVR scene dict (plus per-object "bbox") and its image."""
    rng = random.Random(f"clevr-synthetic:{cfg.seed}:{split}:scene:{index}")
    w, h = cfg.image_width, cfg.image_height
    for _attempt in range(200):
        camera = sample_camera(rng, w, h)
        objects = sample_objects(rng, rng.randint(cfg.min_objects, cfg.max_objects), camera)
        if objects is None:
            continue
        result = render_scene(objects, camera, supersample=supersample)
        ok = True
        for box, vis in zip(result.bboxes, result.visible_pixels, strict=True):
            x1, y1, x2, y2 = box
            area = max(1, (x2 - x1) * (y2 - y1))
            inside = x1 > 0 and y1 > 0 and x2 < w and y2 < h
            if not inside or vis < MIN_VISIBLE_FRACTION * 0.75 * area or vis < MIN_VISIBLE_PIXELS * w * h:
                ok = False
                break
        if ok:
            break
    else:
        raise RuntimeError(f"could not place objects for scene {index} after 200 attempts")
    directions = camera.directions()
    scene_objects = []
    for obj, box, pc in zip(objects, result.bboxes, result.pixel_coords, strict=True):
        scene_objects.append(
            {
                "color": obj["color"],
                "size": obj["size"],
                "rotation": obj["rotation"],
                "shape": obj["shape"],
                "3d_coords": obj["3d_coords"],
                "material": obj["material"],
                "pixel_coords": pc,
                "bbox": box,
            }
        )
    scene = {
        "split": split,
        "image_index": index,
        "image_filename": image_filename(split, index),
        "objects": scene_objects,
        "relationships": compute_relationships(scene_objects, directions),
        "directions": directions,
        "camera": camera_record(camera),  # exact masks and depths follow from it (synthetic/annotations.py)
    }
    return scene, result.image


def scene_questions(cfg: SyntheticConfig, scene: dict, first_index: int) -> list[dict]:
    """The questions of one scene in CLEVR's question-file format (answers from the reference executor)."""
    rng = random.Random(f"clevr-synthetic:{cfg.seed}:{scene['split']}:questions:{scene['image_index']}")
    out = []
    for k, q in enumerate(generate_questions(scene, rng, cfg.questions_per_scene)):
        out.append(
            {
                "split": scene["split"],
                "question_index": first_index + k,
                "image_filename": scene["image_filename"],
                "image_index": scene["image_index"],
                "question": q.text,
                "answer": q.answer,
                "question_family_index": q.family_index,
                "program": q.program,
            }
        )
    return out


def to_sample(q: dict, scene: dict, image: Image.Image | None = None, image_path: str | None = None) -> Sample:
    """A question dict + its scene as a Sample (the same for on-the-fly and loaded-from-disk data)."""
    from local_datasets.clevr import program_meta, scene_boxes

    return Sample(
        id=f"{q['split']}_{q['question_index']:06d}",
        question=q["question"],
        answer=q["answer"],
        image_path=image_path,
        image=image,
        boxes=scene_boxes(scene),
        program=q["program"],
        scene=scene,
        meta=program_meta(q["program"], q.get("question_family_index"), q["split"]),
    )


def iter_world(cfg: SyntheticConfig, split: str = "val") -> Iterator[tuple[dict, Image.Image, list[dict]]]:
    """(scene, image, questions) for scene 0, 1, ... num_scenes - 1; question indices run on across scenes."""
    check_config(cfg)
    next_q = 0
    for index in range(cfg.num_scenes):
        scene, image = make_scene(cfg, split, index)
        questions = scene_questions(cfg, scene, next_q)
        next_q += len(questions)
        yield scene, image, questions


def iter_samples(cfg: SyntheticConfig, split: str = "val") -> Iterator[Sample]:
    """Samples generated on the fly (PIL image in ``image``, no image_path)."""
    for scene, image, questions in iter_world(cfg, split):
        for q in questions:
            yield to_sample(q, scene, image=image)


def write_dataset(
    out_dir: str | Path, cfg: SyntheticConfig, split: str = "val", progress: bool = True
) -> dict[str, Any]:
    """Write the official CLEVR_v1.0 layout under ``out_dir``; returns counts."""
    from tqdm import tqdm

    out = Path(out_dir)
    img_dir = out / "images" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    (out / "scenes").mkdir(parents=True, exist_ok=True)
    (out / "questions").mkdir(parents=True, exist_ok=True)
    scenes: list[dict] = []
    questions: list[dict] = []
    bar = tqdm(iter_world(cfg, split), total=cfg.num_scenes, desc=f"synthetic {split}", disable=not progress)
    for scene, image, qs in bar:
        image.save(img_dir / scene["image_filename"], format="PNG")
        scenes.append(scene)
        questions.extend(qs)
    info = {"split": split, "version": "1.0", "generator": "neptune clevr_synthetic", "seed": cfg.seed}
    (out / "scenes" / f"CLEVR_{split}_scenes.json").write_text(json.dumps({"info": info, "scenes": scenes}))
    (out / "questions" / f"CLEVR_{split}_questions.json").write_text(json.dumps({"info": info, "questions": questions}))
    families: dict[str, int] = {}
    for q in questions:
        fam = family_of(q["program"])
        families[fam] = families.get(fam, 0) + 1
    return {"scenes": len(scenes), "questions": len(questions), "families": families}
