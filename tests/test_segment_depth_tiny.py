"""SAM, SAM 2 and Depth Anything: tiny random models built here from configs, saved with
``save_pretrained`` and loaded back by the production code (vision_agents/hf_segmenters.py,
vision_agents/hf_depth.py: ``from_pretrained`` through ``load_model``), then run through its
inference path (processor -> image encoder once per image -> box prompts -> post-processing).

Nothing is downloaded. SAM 2's image processor (``Sam2ImageProcessor``) needs torchvision,
which this machine lacks: its test loads the *model* from disk through the production path
and passes a processor built here whose image part re-does the torchvision one's steps with
PIL (resize to the square input, rescale, normalise; masks bilinearly upsampled and
thresholded exactly as ``Sam2ImageProcessor.post_process_masks`` does). The production
loader's own answer to the missing torchvision (one line) is tested too.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from neptune_core.config import RunConfig  # noqa: E402
from neptune_core.errors import ModelUnavailableError, UnknownNameError  # noqa: E402
from vision_agents import build_depth_model, build_segmenter  # noqa: E402
from vision_agents.depth import CachedDepth  # noqa: E402
from vision_agents.hf_depth import HFDepthEstimator  # noqa: E402
from vision_agents.hf_segmenters import HFSegmenter  # noqa: E402
from vision_agents.segmenters import CachedSegmenter, Segmenter  # noqa: E402

BOXES = [[10.0, 10.0, 30.0, 40.0], [40.0, 5.0, 70.0, 50.0], [5.0, 44.0, 25.0, 58.0]]
DECODER = dict(hidden_size=16, mlp_dim=32, num_hidden_layers=1, num_attention_heads=2, iou_head_hidden_dim=16)
PROMPT = dict(hidden_size=16, image_size=64, patch_size=16, mask_input_channels=4)


def scene(w: int = 80, h: int = 60) -> Image.Image:
    im = Image.new("RGB", (w, h), (110, 110, 115))
    d = ImageDraw.Draw(im)
    d.rectangle([12, 14, 28, 38], fill=(200, 40, 40))
    d.ellipse([44, 10, 66, 46], fill=(40, 160, 60))
    return im


def save_tiny_sam(path: Path) -> None:
    from transformers import SamConfig, SamImageProcessorPil, SamModel, SamProcessor

    torch.manual_seed(0)
    vision = dict(
        hidden_size=32, output_channels=16, num_hidden_layers=2, num_attention_heads=2, image_size=64,
        patch_size=16, window_size=2, global_attn_indexes=[1], num_pos_feats=8, mlp_dim=32,
    )  # fmt: skip
    model = SamModel(SamConfig(vision_config=vision, prompt_encoder_config=PROMPT, mask_decoder_config=DECODER))
    ip = SamImageProcessorPil(
        size={"longest_edge": 64},
        pad_size={"height": 64, "width": 64},
        mask_size={"longest_edge": 16},
        mask_pad_size={"height": 16, "width": 16},
    )
    model.save_pretrained(path)
    SamProcessor(image_processor=ip).save_pretrained(path)


def save_tiny_sam2(path: Path) -> None:
    from transformers import Sam2Config, Sam2Model

    torch.manual_seed(0)
    backbone = dict(
        model_type="sam2_hiera_det_model", hidden_size=8, num_attention_heads=1, image_size=[64, 64],
        patch_kernel_size=[7, 7], patch_stride=[4, 4], patch_padding=[3, 3], query_stride=[2, 2],
        window_positional_embedding_background_size=[2, 2], num_query_pool_stages=3, blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[8, 16, 32, 64], num_attention_heads_per_stage=[1, 1, 1, 1],
        window_size_per_stage=[2, 2, 2, 2], global_attention_blocks=[3],
    )  # fmt: skip
    vision = dict(
        backbone_config=backbone,
        backbone_channel_list=[64, 32, 16, 8],
        backbone_feature_sizes=[[16, 16], [8, 8], [4, 4]],
        fpn_hidden_size=16,
    )
    Sam2Model(
        Sam2Config(vision_config=vision, prompt_encoder_config=PROMPT, mask_decoder_config=DECODER)
    ).save_pretrained(path)
    # what a hub SAM 2.1 repository names (its image processor is the torchvision one)
    image_processor = {"image_processor_type": "Sam2ImageProcessor", "size": {"height": 64, "width": 64}}
    (path / "preprocessor_config.json").write_text(json.dumps(image_processor))
    (path / "processor_config.json").write_text(json.dumps({"processor_class": "Sam2Processor"}))


class PilSam2ImageProcessor:
    """Test-only stand-in for the torchvision-only Sam2ImageProcessor (see the module docstring)."""

    size = {"height": 64, "width": 64}
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])

    def __call__(self, images: Any, segmentation_maps: Any = None, return_tensors: Any = None, **_: Any) -> Any:
        from transformers import BatchFeature

        im = images if isinstance(images, Image.Image) else images[0]
        a = np.asarray(im.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR), dtype=np.float32) / 255
        a = (a - self.mean) / self.std
        pixels = torch.tensor(a, dtype=torch.float32).permute(2, 0, 1)[None]
        return BatchFeature({"pixel_values": pixels, "original_sizes": torch.tensor([[im.height, im.width]])})

    def post_process_masks(
        self, masks: Any, original_sizes: Any, mask_threshold: float = 0.0, binarize: bool = True, *_: Any, **__: Any
    ) -> list[torch.Tensor]:
        out = []
        for i, (h, w) in enumerate(original_sizes.tolist()):
            up = F.interpolate(masks[i], (h, w), mode="bilinear", align_corners=False)
            out.append(up > mask_threshold if binarize else up)
        return out


def sam2_processor() -> Any:
    from transformers import Sam2Processor

    class Processor(Sam2Processor):  # the real class, minus its check that the image processor is torchvision's
        def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
            return None

    return Processor(image_processor=PilSam2ImageProcessor())


def save_tiny_depth_anything(path: Path, kind: str = "relative") -> None:
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, DPTImageProcessorPil

    torch.manual_seed(0)
    backbone = dict(
        model_type="dinov2", hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        image_size=28, patch_size=14, out_features=["stage1", "stage2"], reshape_hidden_states=False,
    )  # fmt: skip
    config = DepthAnythingConfig(
        backbone_config=backbone, patch_size=14, reassemble_hidden_size=16, reassemble_factors=[2, 1],
        neck_hidden_sizes=[8, 16], fusion_hidden_size=8, head_hidden_size=8, depth_estimation_type=kind,
        max_depth=20,
    )  # fmt: skip
    DepthAnythingForDepthEstimation(config).save_pretrained(path)
    DPTImageProcessorPil(
        size={"height": 28, "width": 28}, keep_aspect_ratio=True, ensure_multiple_of=14
    ).save_pretrained(path)


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_perception")
    dirs = {k: root / k for k in ("sam", "sam2", "depth", "metric")}
    save_tiny_sam(dirs["sam"])
    save_tiny_sam2(dirs["sam2"])
    save_tiny_depth_anything(dirs["depth"])
    save_tiny_depth_anything(dirs["metric"], "metric")
    return dirs


def check_masks(masks: list[np.ndarray], image: Image.Image, n: int) -> None:
    assert len(masks) == n
    for m in masks:
        assert m.dtype == bool and m.shape == (image.height, image.width)


@pytest.mark.parametrize("family", ["sam", "sam2"])
def test_segmenter_loads_from_disk_and_segments_each_box_once(tiny_dirs: dict[str, Path], family: str) -> None:
    """The segmenter as a run builds it (config ``segmenter`` = a local directory), behind the run's cache."""
    config = RunConfig(segmenter=str(tiny_dirs[family]), device="cpu")
    seg = build_segmenter(config)
    assert isinstance(seg, HFSegmenter)
    if family == "sam2":
        seg.processor = sam2_processor()  # see the module docstring
    seg.check_available()
    seg.preflight()  # the model through AutoModelForMaskGeneration.from_pretrained (load_model)
    expected = {"sam": ("SamModel", "SamProcessor"), "sam2": ("Sam2Model", "Processor")}[family]
    assert (type(seg.model).__name__, type(seg.processor).__name__) == expected
    assert not seg.model.training and seg.model.device.type == "cpu"

    image = scene()
    cached = CachedSegmenter(seg, images=4)
    masks = cached.masks(image, BOXES[:2])
    check_masks(masks, image, 2)
    assert (seg.forward_passes, cached.calls) == (1, 1)
    again = cached.masks(image, [BOXES[1], BOXES[2], BOXES[0]])  # one new box: one backend call, no new encoding
    check_masks(again, image, 3)
    assert np.array_equal(again[0], masks[1]) and np.array_equal(again[2], masks[0])
    assert (seg.forward_passes, cached.calls) == (1, 2)
    cached.masks(image, BOXES)  # all known: nothing runs
    assert (seg.forward_passes, cached.calls) == (1, 2)
    # the production decoder pass on its own, compared with the model's full forward on the same prompts
    direct = seg.segment(image, [BOXES[2]])[0]
    assert np.array_equal(direct, again[1])
    enc = seg.processor(images=image, input_boxes=[[BOXES[2]]], return_tensors="pt")
    with torch.inference_mode():
        full = seg.model(pixel_values=enc["pixel_values"], input_boxes=enc["input_boxes"], multimask_output=False)
    sizes = [enc[k] for k in ("original_sizes", "reshaped_input_sizes") if k in enc]
    ref = seg.processor.post_process_masks(full.pred_masks, *sizes)[0][0, 0].numpy()
    assert np.array_equal(direct, ref)


def test_segmenter_masks_follow_the_box_prompt(tiny_dirs: dict[str, Path]) -> None:
    """Different boxes prompt different masks (the prompt reaches the decoder), on another image too."""
    seg = HFSegmenter(str(tiny_dirs["sam"]), device="cpu")
    a, b = seg.segment(scene(), [BOXES[0], BOXES[1]])
    assert not np.array_equal(a, b)
    other = scene(96, 64)
    check_masks(seg.segment(other, BOXES), other, 3)
    assert seg.forward_passes == 2


def test_depth_anything_loads_from_disk_and_maps_the_image(tiny_dirs: dict[str, Path]) -> None:
    est = build_depth_model(RunConfig(depth_model=str(tiny_dirs["depth"]), device="cpu"))
    assert isinstance(est, HFDepthEstimator)
    est.check_available()
    est.preflight()
    assert type(est.model).__name__ == "DepthAnythingForDepthEstimation"
    assert est.kind == "inverse"  # a relative model: larger is nearer
    image = scene()
    cached = CachedDepth(est, images=2)
    depth = cached.depth_map(image)
    assert depth.shape == (60, 80) and depth.dtype == np.float32 and np.isfinite(depth).all()
    assert float(depth.std()) > 0
    assert cached.depth_map(image) is depth and (est.forward_passes, cached.calls) == (1, 1)
    # the same numbers as the model's own forward and the processor's post-processing
    enc = est.processor(images=image, return_tensors="pt")
    with torch.inference_mode():
        out = est.model(**enc)
    ref = est.processor.post_process_depth_estimation(out, target_sizes=[(60, 80)])[0]["predicted_depth"]
    assert np.allclose(depth, ref.numpy(), atol=1e-6)
    metric = HFDepthEstimator(str(tiny_dirs["metric"]), device="cpu")
    assert metric.kind == "distance"


def test_missing_weights_fail_in_one_line(tmp_path: Path) -> None:
    for build, key in ((build_segmenter, "segmenter"), (build_depth_model, "depth_model")):
        backend = build(RunConfig(**{key: "no-such-org/no-such-model-xyz"}, device="cpu"))
        with pytest.raises(ModelUnavailableError) as err:
            backend.check_available()
        assert "no-such-org/no-such-model-xyz" in str(err.value) and "\n" not in str(err.value)
    empty = tmp_path / "empty_model"
    empty.mkdir()
    with pytest.raises(ModelUnavailableError, match="empty_model"):
        HFSegmenter(str(empty), device="cpu").load()
    with pytest.raises(ModelUnavailableError, match="empty_model"):
        HFDepthEstimator(str(empty), device="cpu").load()


def test_sam2_without_torchvision_fails_in_one_line(tiny_dirs: dict[str, Path]) -> None:
    pytest.importorskip("transformers")
    try:
        import torchvision  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("torchvision is installed: Sam2ImageProcessor loads")
    seg = HFSegmenter(str(tiny_dirs["sam2"]), device="cpu")
    with pytest.raises(ModelUnavailableError) as err:
        seg.preflight()
    msg = str(err.value)
    assert "torchvision" in msg and "\n" not in msg and "Sam2ImageProcessor" in msg
    with pytest.raises(ModelUnavailableError):  # not retried per sample
        seg.segment(scene(), BOXES)


def test_aliases_and_unknown_names() -> None:
    seg = build_segmenter(RunConfig(segmenter="sam2_large"))
    assert isinstance(seg, HFSegmenter) and seg.model_id == "facebook/sam2.1-hiera-large" and seg.model is None
    assert build_segmenter(RunConfig(segmenter="sam_base")).model_id == "facebook/sam-vit-base"
    est = build_depth_model(RunConfig(depth_model="depth_anything_v2_small"))
    assert est.model_id == "depth-anything/Depth-Anything-V2-Small-hf" and est.model is None
    assert build_segmenter(RunConfig()) is None and build_depth_model(RunConfig()) is None
    with pytest.raises(UnknownNameError, match="sam2_large"):
        build_segmenter(RunConfig(segmenter="sam2_larg"))
    with pytest.raises(UnknownNameError, match="scene_depth"):
        build_depth_model(RunConfig(depth_model="scene_dept"))


class EllipseSegmenter(Segmenter):
    """Around the thing under test (the VLM's marking path): the ellipse inscribed in each box."""

    name = "ellipses"

    def __init__(self) -> None:
        self.asked: list[int] = []

    def segment(self, image: Image.Image, boxes: list) -> list[np.ndarray]:
        self.asked.append(len(boxes))
        out = []
        for b in boxes:
            im = Image.new("1", image.size)
            ImageDraw.Draw(im).ellipse([b[0], b[1], b[2] - 1, b[3] - 1], fill=1)
            out.append(np.asarray(im, dtype=bool))
        return out


@pytest.mark.parametrize("style", ["mask_outline", "mask_overlay", "crop"])
def test_transformers_vlm_sees_the_runs_marking(style: str) -> None:
    """A transformers VLM under a non-box style scores the marker's PIL drawings (tensor marks are box-only)."""
    from tests.test_vlm_tiny_models import FAMILIES, marked_scene
    from vision_agents.hf_vlm import HFVisionAgent
    from vision_agents.object_marking import ObjectMarker

    torch.manual_seed(0)
    model, proc = FAMILIES["qwen2_vl"]()
    image = marked_scene(3)
    boxes = [[2.0, 3.0, 20.0, 25.0], [30.0, 5.0, 60.0, 40.0], [10.0, 20.0, 40.0, 46.0]]
    question = "Is the object in the red box a cube?"
    agent = HFVisionAgent("tiny", device="cpu", batch_size=4, model=model, processor=proc)
    boxed = agent.score(image, boxes, [question], 1)
    seg = EllipseSegmenter()
    marker = ObjectMarker(style, CachedSegmenter(seg))
    agent.use_marker(marker)
    assert "PIL" in agent.marking["style"] and style in agent.marking["style"]
    got = agent.score(image, boxes, [question], 1)
    expected = agent.score_items([(marker.mark(image, (b,)), question) for b in boxes])
    assert torch.allclose(got.flatten(), expected.flatten(), atol=1e-5)
    assert not torch.allclose(got, boxed, atol=1e-4)  # the marks changed what the model saw
    assert seg.asked == ([3] if style != "crop" else [])  # masks once per image and box; a crop needs none


def test_bfloat16_weights_as_on_a_gpu(tiny_dirs: dict[str, Path]) -> None:
    """On CUDA the loaders pick bfloat16 (vision_agents/devices.py): inputs follow the weights' dtype and the
    outputs come back as bool masks and a float32 depth map, close to the float32 model's."""
    import transformers

    image = scene()
    for family in ("sam", "sam2"):
        model = transformers.AutoModelForMaskGeneration.from_pretrained(tiny_dirs[family], dtype=torch.bfloat16)
        proc = sam2_processor() if family == "sam2" else None
        masks = HFSegmenter(str(tiny_dirs[family]), model=model.eval(), processor=proc).segment(image, BOXES)
        check_masks(masks, image, 3)
    model = transformers.AutoModelForDepthEstimation.from_pretrained(tiny_dirs["depth"], dtype=torch.bfloat16)
    half = HFDepthEstimator(str(tiny_dirs["depth"]), model=model.eval()).depth_map(image)
    full = HFDepthEstimator(str(tiny_dirs["depth"]), device="cpu").depth_map(image)
    assert half.dtype == np.float32 and half.shape == full.shape
    assert np.corrcoef(half.ravel(), full.ravel())[0, 1] > 0.9
