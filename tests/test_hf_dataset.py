"""dataset "hf": Hugging Face `datasets` data from local files, offline, mapped by hf_columns.

The tiny datasets are built in the tests, in lmms-eval's parquet layout (question_id, question,
answer, an image struct of bytes and path, category) and in save_to_disk form."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

datasets = pytest.importorskip("datasets")
import pyarrow as pa  # noqa: E402 (datasets brings pyarrow)
import pyarrow.parquet as pq  # noqa: E402

import run  # noqa: E402
from local_datasets import load_samples  # noqa: E402
from local_datasets.hf import HFSample  # noqa: E402
from neptune_core.config import load_config  # noqa: E402
from neptune_core.errors import UserError  # noqa: E402
from runners.results import read_results  # noqa: E402
from tests import fake_openai_server  # noqa: E402
from tests.fake_openai_server import Action, FakeOpenAIServer, reply  # noqa: E402
from tests.fixtures.own_data import IMAGES, draw  # noqa: E402

fake_openai = fake_openai_server.fake_openai  # the fixture

ROWS = [  # MME-style: yes/no questions, capitalised answers, a category per question
    ("paper.png-1", "paper", "Is there a triangle in the image?", "Yes", "shape"),
    ("paper.png-2", "paper", "Is there a square in the image?", "No", "shape"),
    ("night.png-1", "night", "Is there a white object in the image?", "Yes", "color"),
    ("sand.png-1", "sand", "Is there a pink object in the image?", "No", "color"),
]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network, and the datasets cache inside the test's folder."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


def _png(name: str) -> bytes:
    buf = io.BytesIO()
    draw(*IMAGES[name]).save(buf, format="PNG")
    return buf.getvalue()


def lmms_eval_parquet(path: Path, with_hf_metadata: bool) -> Path:
    """The rows as lmms-eval's parquet files hold them: the image is a {bytes, path} struct."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {
        "question_id": [r[0] for r in ROWS],
        "question": [r[2] for r in ROWS],
        "answer": [r[3] for r in ROWS],
        "image": [{"bytes": _png(r[1]), "path": f"{r[1]}.png"} for r in ROWS],
        "category": [r[4] for r in ROWS],
    }
    if with_hf_metadata:  # written by `datasets` (as uploaded to the Hub): the image column is an Image feature
        features = datasets.Features(
            {k: datasets.Value("string") for k in columns if k != "image"} | {"image": datasets.Image()}
        )
        datasets.Dataset.from_dict(columns, features=features).to_parquet(str(path))
    else:  # plain pyarrow: a struct column, no feature metadata
        image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        table = pa.table({k: (pa.array(v, type=image_type) if k == "image" else v) for k, v in columns.items()})
        pq.write_table(table, path)
    return path


def _llm(body: dict[str, Any]) -> Action:
    question = re.search(r"Question: (.*)", body["messages"][-1]["content"]).group(1)  # type: ignore[union-attr]
    concept = re.search(r"Is there an? (.*) in the image\?", question).group(1)  # type: ignore[union-attr]
    ask = f"Is this object {concept.removesuffix(' object')}?" if "object" in concept else f"Is this a {concept}?"
    return reply(
        f'Objects: ["thing"]\n```python\ndef execute(score, query, n):\n    return score({ask!r}, 1).exists()\n```\n'
    )


@pytest.mark.parametrize(("layout", "hf_path", "split"), [("hub", "mme", "test"), ("file", "mme.parquet", "")])
def test_lmms_eval_parquet_through_run_py(
    fake_openai: FakeOpenAIServer, tmp_path: Path, capsys, layout: str, hf_path: str, split: str
) -> None:
    data = tmp_path / "data"
    if layout == "hub":  # the Hub's folder layout: split names from the file names
        lmms_eval_parquet(data / "mme" / "data" / "test-00000-of-00001.parquet", with_hf_metadata=True)
    else:
        lmms_eval_parquet(data / "mme.parquet", with_hf_metadata=False)
    fake_openai.responder = _llm
    fake_openai.models = ["local-model"]  # what the server serves
    config = {
        "dataset": "hf",
        "hf_path": hf_path,
        "hf_split": split,
        "hf_columns": {"family": "category"},  # id, image, question, answer: same-named columns
        "vlm_model_name": "classic",
        "od_model": "classic",
        "program_generator": "llm",
        "code_gen_provider": "vllm",
        "code_gen_base_url": fake_openai.base_url,
        "code_gen_model_name": "local-model",
    }
    cfg = tmp_path / "hf.json"
    cfg.write_text(json.dumps(config))
    argv = ["--config", str(cfg), "--data_root", str(data), "--output_dir", str(tmp_path / "exp")]
    assert run.main(argv) == 0
    (run_dir,) = (tmp_path / "exp").iterdir()
    rows, _ = read_results(run_dir / "results.jsonl")
    assert [r["id"] for r in rows] == [r[0] for r in ROWS]  # question_id, in dataset order
    assert [r["gold"] for r in rows] == [r[3] for r in ROWS]
    assert all(r["error"] is None for r in rows), [r["error"] for r in rows]
    assert [r["pred"] for r in rows] == ["yes", "no", "yes", "no"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["accuracy"] == 100.0 and set(summary["per_family"]) == {"shape", "color"}
    assert len(fake_openai.sample_requests()) == 4
    system = fake_openai.sample_requests()[0]["messages"][0]["content"]
    assert "everyday photos or pictures" in system  # the general vqa family
    assert "report:" in capsys.readouterr().out


def test_save_to_disk_vqav2_answers_path_images_and_lazy_decoding(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    draw(*IMAGES["sky"]).save(tmp_path / "imgs" / "sky.png")
    columns = {
        "qid": [7, 8],
        "q": ["What color is the circle?", "How many shapes?"],
        "answers": [[{"answer": "pink"}, {"answer": "pink"}, {"answer": "magenta"}], [{"answer": "2"}]],
        "file": ["imgs/sky.png", "imgs/sky.png"],
    }
    dd = datasets.DatasetDict(
        {"val": datasets.Dataset.from_dict(columns), "train": datasets.Dataset.from_dict(columns)}
    )
    dd.save_to_disk(str(tmp_path / "vqa"))
    hf_columns = {"id": "qid", "question": "q", "answer": "answers", "image": "file"}
    cfg = {"dataset": "hf", "hf_path": str(tmp_path / "vqa"), "hf_columns": hf_columns, "hf_split": "val"}
    cfg["image_dir"] = str(tmp_path)
    samples = load_samples(load_config(None, cfg))
    assert [s.id for s in samples] == ["7", "8"] and all(isinstance(s, HFSample) for s in samples)
    assert samples[0].answer == "pink" and samples[0].meta["answers"] == ["pink", "pink", "magenta"]
    assert samples[0].image is None and samples[0].image_path is None  # nothing decoded yet
    assert samples[0].load_image().size == (200, 150)
    assert samples[0].load_image().getpixel((55, 75)) == (255, 105, 180)  # the pink circle
    first = load_samples(load_config(None, {**cfg, "num_samples": 1}))
    assert len(first) == 1
    with pytest.raises(UserError, match=r"has splits (val, train|train, val): choose one with hf_split"):
        load_samples(load_config(None, {**cfg, "hf_split": ""}))
    with pytest.raises(UserError, match=r"has no split 'test'; its splits: val, train"):
        load_samples(load_config(None, {**cfg, "hf_split": "test"}))


def test_image_structs_decode_lazily_and_extra_images(tmp_path: Path) -> None:
    path = lmms_eval_parquet(tmp_path / "x.parquet", with_hf_metadata=True)
    samples = load_samples(
        load_config(None, {"dataset": "hf", "hf_path": str(path), "hf_columns": {"images": "image,image"}})
    )
    s = samples[2]
    assert s.id == "night.png-1" and s.answer == "Yes" and s.meta["family"] == "answer"
    assert s.source.features["image"].decode is False  # the dataset hands over bytes, not images
    assert s.load_image().getpixel((5, 5)) == (40, 40, 40)
    assert [im.size for im in s.extra_images()] == [(200, 150), (200, 150)]


def test_a_column_holding_a_list_of_images(tmp_path: Path) -> None:
    features = datasets.Features(
        {"question": datasets.Value("string"), "image": datasets.Image(), "pair": datasets.Sequence(datasets.Image())}
    )
    pics = [draw(*IMAGES["paper"]), draw(*IMAGES["night"])]
    ds = datasets.Dataset.from_dict({"question": ["same?"], "image": [pics[0]], "pair": [pics]}, features=features)
    ds.save_to_disk(str(tmp_path / "pairs"))
    cfg = {"dataset": "hf", "hf_path": str(tmp_path / "pairs"), "hf_columns": {"images": "pair"}}
    (s,) = load_samples(load_config(None, cfg))
    assert s.id == "data_000000" and s.answer is None
    assert s.source.features["pair"].feature.decode is False
    assert [im.getpixel((5, 5)) for im in s.extra_images()] == [(255, 255, 255), (40, 40, 40)]


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"picture": "image"}, r"hf_columns has unknown field\(s\) picture; known: image, question"),
        (
            {"question": "prompt"},
            r"hf_columns.question: no column prompt; the dataset's columns: question_id, question",
        ),
    ],
)
def test_column_map_errors_are_one_line(tmp_path: Path, columns: dict[str, str], message: str) -> None:
    path = lmms_eval_parquet(tmp_path / "x.parquet", with_hf_metadata=False)
    with pytest.raises(UserError, match=message):
        load_samples(load_config(None, {"dataset": "hf", "hf_path": str(path), "hf_columns": columns}))


def test_missing_local_path_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"dataset": "hf", "hf_path": "./nowhere", "program_generator": "given"}))
    assert run.main(["--config", str(cfg), "--output_dir", str(tmp_path / "exp")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "hf_path nowhere does not exist" in err


def test_wrong_split_of_a_hub_layout_folder_is_one_line(tmp_path: Path) -> None:
    lmms_eval_parquet(tmp_path / "mme" / "data" / "test-00000-of-00001.parquet", with_hf_metadata=True)
    cfg = {"dataset": "hf", "hf_path": str(tmp_path / "mme"), "hf_split": "validation"}
    with pytest.raises(UserError, match=r"could not read the dataset at .*mme: .*validation.*test") as e:
        load_samples(load_config(None, cfg))
    assert "\n" not in str(e.value)
