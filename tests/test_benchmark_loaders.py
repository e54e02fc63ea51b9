"""The loaders of VLAgent's image benchmarks on tiny fixtures in the official release layouts (and
lmms-lab's Hugging Face layouts), built in the tests; the seeded sampler and its saved choice; and
the one-line errors when the data is not where the config says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from local_datasets import load_samples
from local_datasets.sampling import save_selection
from neptune_core.config import load_config
from neptune_core.errors import UserError
from tests.fixtures.benchmarks import (
    GQA_QUESTIONS,
    HC_ANNOTATIONS,
    MME_DATA,
    NLVR2_EXAMPLES,
    VQA_QUESTIONS,
    build_gqa,
    build_gqa_copy,
    build_hc_refloco,
    build_mme,
    build_mme_copy,
    build_nlvr2,
    build_vqav2,
    build_vqav2_copy,
)
from tests.fixtures.own_data import figure_box

datasets = pytest.importorskip("datasets")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


def _load(tmp_path: Path, **fields: Any) -> list:
    return load_samples(load_config(None, {"data_root": str(tmp_path), **fields}))


def test_gqa_official_layout(tmp_path: Path) -> None:
    build_gqa(tmp_path)
    samples = _load(tmp_path, dataset="gqa", split="testdev")
    assert [s.id for s in samples] == list(GQA_QUESTIONS)
    s = samples[2]
    assert (s.question, s.answer) == ("What color is the star?", "pink")
    assert s.meta["family"] == "query" and s.meta["question_type"] == "colorObj" and s.meta["image_id"] == "n1"
    assert s.image_path == str(tmp_path / "gqa" / "images" / "n1.jpg") and s.load_image().size == (200, 150)
    assert s.load_images()[0].size == (200, 150) and len(s.load_images()) == 1


def test_gqa_lmms_lab_copy_joins_questions_and_images(tmp_path: Path) -> None:
    build_gqa_copy(tmp_path)
    build_gqa(tmp_path / "o")
    official = {s.id: s for s in _load(tmp_path / "o", dataset="gqa", split="testdev")}
    samples = _load(tmp_path, dataset="gqa", hf_path="GQA", split="testdev")
    assert [s.id for s in samples] == list(GQA_QUESTIONS)
    for s in samples:  # the same questions, answers and types; each image decoded on demand, the right one
        o = official[s.id]
        assert (s.question, s.answer, s.meta) == (o.question, o.answer, o.meta)
        assert s.load_image().tobytes() == o.load_image().tobytes()
    with pytest.raises(UserError, match="no testdev_all_instructions/\\*.parquet"):
        _load(tmp_path, dataset="gqa", hf_path="GQA", split="testdev_all")


def test_nlvr2_two_images_per_example_and_missing_images_left_out(tmp_path: Path, caplog) -> None:
    build_nlvr2(tmp_path)
    samples = _load(tmp_path, dataset="nlvr2", split="balanced_test1")
    assert [s.id for s in samples] == [e[0] for e in NLVR2_EXAMPLES[:-1]]  # the last one has no images
    assert "1 of 6 examples of balanced_test1.json left out" in caplog.text
    s = samples[0]
    assert (s.question, s.answer, s.meta["family"], s.meta["sentence_key"]) == (
        "The left image contains a triangle.", "True", "true", "test1-0-0")  # fmt: skip
    assert s.image_path.endswith("test1/test1-0-0-img0.png") and s.more_images[0].endswith("test1-0-0-img1.png")
    left, right = s.load_images()
    assert left.getpixel((1, 1)) == (255, 255, 255) and right.getpixel((1, 1)) == (40, 40, 40)  # paper, night
    assert s.image_names() == [s.image_path, s.more_images[0]]
    with pytest.raises(UserError, match="NLVR2 split test1 not found: no test1.json"):
        _load(tmp_path, dataset="nlvr2", split="test1")
    with pytest.raises(UserError, match="none of the 6 examples .* has both images"):
        _load(tmp_path, dataset="nlvr2", split="balanced_test1", image_dir=str(tmp_path))


def test_vqav2_official_layout_keeps_the_ten_answers_in_annotator_order(tmp_path: Path) -> None:
    build_vqav2(tmp_path)
    samples = _load(tmp_path, dataset="vqav2", split="val2014")
    assert [s.id for s in samples] == [str(q[0]) for q in VQA_QUESTIONS]
    s = samples[0]
    assert s.answer == "pink" and s.meta["answers"] == VQA_QUESTIONS[0][5] and len(s.meta["answers"]) == 10
    assert (s.meta["family"], s.meta["question_type"]) == ("other", "what color is the")
    assert s.image_path.endswith("val2014/COCO_val2014_000000000042.jpg") and s.load_image().size == (200, 150)


def test_vqav2_lmms_lab_copy(tmp_path: Path) -> None:
    build_vqav2_copy(tmp_path)
    samples = _load(tmp_path, dataset="vqav2", hf_path="VQAv2", hf_split="validation")
    assert [(s.id, s.answer, s.meta["answers"], s.meta["question_type"]) for s in samples] == [
        (str(qid), max(set(a), key=a.count), a, qt) for qid, _, _, qt, _, a in VQA_QUESTIONS
    ]
    assert samples[0].load_image().getpixel((1, 1)) == (255, 255, 255)
    with pytest.raises(UserError, match="no column\\(s\\) question_kind"):
        _load(tmp_path, dataset="vqav2", hf_path="VQAv2", hf_columns={"question_type": "question_kind"})


def test_mme_both_release_forms_and_the_lmms_lab_copy_give_the_same_samples(tmp_path: Path) -> None:
    build_mme(tmp_path)
    build_mme_copy(tmp_path)
    samples = _load(tmp_path, dataset="mme")
    by_id = {s.id: s for s in samples}
    assert sorted(by_id) == sorted(
        f"{sub}/{d}.{'jpg' if sub == 'artwork' else 'png'}#{k}"
        for sub, imgs in MME_DATA.items()
        for d in imgs
        for k in range(2)
    )
    s = by_id["existence/paper.png#1"]
    assert (s.answer, s.meta["family"], s.meta["mme_image"]) == ("No", "existence", "existence/paper.png")
    assert s.question == "Is there a square in this image? Please answer yes or no."
    assert by_id["artwork/sky.jpg#0"].load_image().size == (200, 150)  # images/ + questions_answers_YN/
    copy = {s.id: s for s in _load(tmp_path, dataset="mme", hf_path="MME", hf_split="test")}
    assert {k.replace("sky.jpg", "sky.png") for k in by_id} == set(copy)
    assert copy["existence/paper.png#1"].answer == "No" and copy["existence/paper.png#1"].meta["mme_image"] == (
        "existence/paper.png"
    )


def test_hc_refloco_official_layout(tmp_path: Path) -> None:
    build_hc_refloco(tmp_path)
    samples = _load(tmp_path, dataset="hc_refloco", split="test")
    assert [s.id for s in samples] == [a[0] for a in HC_ANNOTATIONS]
    s = samples[0]
    assert s.answer == pytest.approx(figure_box("paper", "triangle"))  # xywh in the file, xyxy here
    assert s.meta["family"] == "Location" and s.meta["subjects"] == ["Location"]
    assert s.question.startswith("The orange triangle") and s.load_image().size == (200, 150)
    assert len(_load(tmp_path, dataset="hc_refloco", split="val")) == 1
    # the annotations as parquet (as the Hugging Face repository also ships them)
    records = json.loads((tmp_path / "HC_RefLoCo" / "hc_refloco_test.json").read_text())
    datasets.Dataset.from_list(records).to_parquet(str(tmp_path / "HC_RefLoCo" / "hc_refloco_dev.parquet"))
    parquet = _load(tmp_path, dataset="hc_refloco", split="dev")
    assert [(s.id, s.question, s.answer) for s in parquet] == [(s.id, s.question, s.answer) for s in samples]
    with pytest.raises(UserError, match="no hc_refloco_train.json"):
        _load(tmp_path, dataset="hc_refloco", split="train")


def test_sampler_is_seeded_saved_and_replayed(tmp_path: Path) -> None:
    build_gqa(tmp_path)
    per_type = {"dataset": "gqa", "split": "testdev", "sampler.per_type": "2", "sampler.seed": "3"}
    first = _load(tmp_path, **per_type)
    again = _load(tmp_path, **per_type)
    assert [s.id for s in first] == [s.id for s in again]  # the same choice every time
    assert first.selection["per_type"] == {"chooseAttr": 1, "colorObj": 2, "existC": 2}
    assert first.selection["available"] == 7 and first.selection["selected"] == 5
    order = list(GQA_QUESTIONS)
    assert [order.index(s.id) for s in first] == sorted(order.index(s.id) for s in first)  # dataset order kept
    seeds = {tuple(s.id for s in _load(tmp_path, **{**per_type, "sampler.seed": str(k)})) for k in range(8)}
    assert len(seeds) > 1  # the seed changes which existC questions are taken
    path = save_selection(tmp_path, first)
    assert path is not None and json.loads(path.read_text())["ids"] == [s.id for s in first]
    replay = _load(tmp_path, dataset="gqa", split="testdev", **{"sampler.ids_file": str(path)})
    assert [s.id for s in replay] == [s.id for s in first]
    assert len(_load(tmp_path, dataset="gqa", split="testdev", **{"sampler.total": "3", "num_samples": "2"})) == 2
    assert (
        save_selection(tmp_path / "x", _load(tmp_path, dataset="gqa", split="testdev")) is None
    )  # no sampler: nothing to save


def test_sampler_families_pick_mme_subsets_and_unknown_ones_are_named(tmp_path: Path) -> None:
    build_mme(tmp_path)
    samples = _load(tmp_path, dataset="mme", **{"sampler.families": "existence,position,color"})
    assert {s.family for s in samples} == {"existence", "position", "color"} and len(samples) == 8
    with pytest.raises(UserError, match="sampler.families colour not in the data; its families: artwork, color"):
        _load(tmp_path, dataset="mme", **{"sampler.families": "colour"})


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ("gqa", "GQA data not found: .*gqa is not a directory"),
        ("nlvr2", "NLVR2 data not found"),
        ("vqav2", "VQAv2 data not found"),
        ("mme", "MME data not found"),
        ("hc_refloco", "HC-RefLOCO data not found"),
    ],
)
def test_missing_data_is_a_one_line_user_error(tmp_path: Path, dataset: str, message: str) -> None:
    with pytest.raises(UserError, match=message) as info:
        _load(tmp_path, dataset=dataset)
    assert "\n" not in str(info.value)


def test_missing_images_and_files_inside_a_release(tmp_path: Path) -> None:
    (tmp_path / "gqa").mkdir()
    (tmp_path / "gqa" / "testdev_balanced_questions.json").write_text(json.dumps(GQA_QUESTIONS))
    with pytest.raises(UserError, match="GQA images not found: .*images is not a directory"):
        _load(tmp_path, dataset="gqa", split="testdev")
    (tmp_path / "vqav2").mkdir()
    with pytest.raises(UserError, match="VQAv2 val2014 questions not found: no v2_OpenEnded_mscoco_val2014"):
        _load(tmp_path, dataset="vqav2", split="val2014")


def test_extra_image_columns_of_an_hf_dataset_reach_programs_as_image_1(tmp_path: Path) -> None:
    """dataset "hf" with hf_columns.images: the extra images are the sample's image=1, image=2..."""
    from tests.fixtures.own_data import IMAGES, draw

    rows = {"question": ["q"], "answer": ["yes"], "image": [draw(*IMAGES["paper"])],
            "right": [draw(*IMAGES["night"])]}  # fmt: skip
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "pairs"))
    (s,) = _load(tmp_path, dataset="hf", hf_path="pairs", hf_columns={"images": "right"})
    left, right = s.load_images()
    assert left.getpixel((1, 1)) == (255, 255, 255) and right.getpixel((1, 1)) == (40, 40, 40)
    assert s.image_names() == ["row 0 column image", "row 0 column right"]
