"""NeXT-QA: the loader on a fixture in the release layout (built here), VLAgent's sampler of 200 per type,
a run with LLM programs over frames (the LLM is the fake OpenAI-compatible server), and the table rows."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from local_datasets.multiple_choice import split_options
from local_datasets.nextqa import read_rows
from neptune_core.config import load_config
from neptune_core.errors import UserError
from tests import fake_openai_server
from tests.fake_openai_server import reply
from tests.video_fakes import make_event_video

fake_openai = fake_openai_server.fake_openai
HEADER = ["video", "frame_count", "width", "height", "question", "answer", "qid", "type", "a0", "a1", "a2", "a3", "a4"]
# video id -> (folder, shows a red square)
VIDEOS = {"4010069381": ("1012", True), "2435100235": ("0034", False), "7249577400": ("1012", False)}


def _row(video: str, qid: int, qtype: str, question: str, answer: int, options: list[str]) -> list[str]:
    return [video, "20", "96", "64", question, str(answer), str(qid), qtype, *options]


@pytest.fixture(scope="module")
def nextqa_root(tmp_path_factory) -> Path:
    """data/nextqa/{test.csv, map_vid_vidorID.json, NExTVideo/<folder>/<video>.mp4} as NExT-QA ships them."""
    root = tmp_path_factory.mktemp("data")
    ann = root / "nextqa"
    ann.mkdir()
    rows = []
    for video, (_, red) in VIDEOS.items():
        rows.append(
            _row(
                video,
                0,
                "DO",
                "does a red square appear in the video",
                0 if red else 1,
                ["yes", "no", "maybe", "twice", "never, not once"],
            )  # fmt: skip
        )
        rows.append(_row(video, 1, "TN", "what did the lady do after the baby cried", 2, ["a", "b", "c", "d", "e"]))
    with open(ann / "test.csv", "w", newline="") as f:
        csv.writer(f).writerows([HEADER, *rows])
    (ann / "map_vid_vidorID.json").write_text(json.dumps({v: f"{d}/{v}" for v, (d, _) in VIDEOS.items()}))
    for video, (folder, red) in VIDEOS.items():
        make_event_video(
            ann / "NExTVideo" / folder / f"{video}.mp4", 10.0, 2, (96, 64), (3.0, 7.0) if red else (99, 99)
        )
    return root


def _config(root: Path, **extra):
    return load_config(
        None, {"dataset": "nextqa", "data_root": str(root), "data_path": "nextqa", "split": "test", **extra}
    )


def test_the_loader_reads_the_release_layout(nextqa_root):
    from local_datasets import load_samples

    samples = load_samples(_config(nextqa_root))
    assert len(samples) == 6
    s = samples[0]
    assert s.id == "4010069381_0" and s.family == "DO" and s.meta["group"] == "descriptive"
    assert s.meta["options"][4] == "never, not once" and s.meta["answer_index"] == 0 and s.answer == "yes"
    assert split_options(s.question) == ("does a red square appear in the video?", s.meta["options"])
    assert s.video.path.endswith("nextqa/NExTVideo/1012/4010069381.mp4") and Path(s.video.path).is_file()
    assert s.video.num_frames == 20 and (s.video.width, s.video.height) == (96, 64)
    assert samples[3].meta["group"] == "temporal" and samples[3].meta["answer_index"] == 2


def test_broken_layouts_fail_before_the_first_sample(nextqa_root, tmp_path):
    from local_datasets import load_samples

    with pytest.raises(UserError, match="test.csv"):
        load_samples(_config(tmp_path))
    with pytest.raises(UserError, match="needs data_path"):
        load_samples(load_config(None, {"dataset": "nextqa"}))
    with pytest.raises(UserError, match="NExTVideo"):
        load_samples(_config(nextqa_root, image_dir=str(tmp_path / "nowhere")))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "test.csv").write_text("video,question\n1,why\n")
    (bad / "map_vid_vidorID.json").write_text("{}")
    (bad / "NExTVideo").mkdir()
    with pytest.raises(UserError, match="not a NExT-QA annotation file"):
        load_samples(load_config(None, {"dataset": "nextqa", "data_path": str(bad), "split": "test"}))


def test_vlagents_sampler_keeps_200_per_type(tmp_path):
    """On the test split's type counts (TP has 93 questions) the shared sampler's 200 per type gives VLAgent's 1,493."""
    from local_datasets import load_samples

    counts = {"CW": 3329, "CH": 1173, "TN": 1399, "TC": 1165, "TP": 93, "DL": 483, "DC": 322, "DO": 600}
    ann = tmp_path / "nextqa"
    (ann / "NExTVideo").mkdir(parents=True)  # videos are opened only when a sample runs
    (ann / "map_vid_vidorID.json").write_text("{}")
    with open(ann / "test.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        qid = 0
        for qtype, n in counts.items():
            for _ in range(n):
                w.writerow(_row(str(1000 + qid % 50), qid, qtype, "why", 0, list("abcde")))
                qid += 1
    assert len(read_rows(ann / "test.csv")) == sum(counts.values())

    def load(seed: int) -> list:
        return load_samples(_config(tmp_path, **{"sampler.per_type": "200", "sampler.seed": str(seed)}))

    picked = load(0)
    by_type = Counter(s.family for s in picked)
    assert len(picked) == 1493 and by_type["TP"] == 93
    assert all(n == 200 for t, n in by_type.items() if t != "TP")
    assert picked.selection["selected"] == 1493 and picked.selection["available"] == sum(counts.values())
    ids = [s.id for s in picked]
    assert ids == [s.id for s in load(0)] != [s.id for s in load(1)]
    qids = [int(i.rsplit("_", 1)[1]) for i in ids]
    assert qids == sorted(qids)  # file order


def _program_reply(body) -> object:
    """The fake LLM: a program over frames for the red-square question, choose() for any other."""
    text = str(body["messages"][-1]["content"])
    question, options = split_options(text.removeprefix("Question: ").strip())
    if "red square" in question:
        body = (
            f"    options = {json.dumps(options)}\n"
            '    seen = score_frames("Is there a red square?").exists("t")\n'
            "    return 0 if seen.item() > 0.5 else 1\n"
        )
    else:
        body = f"    return choose({json.dumps(question)}, {json.dumps(options)})\n"
    return reply(f"Objects: []\n```python\ndef execute(score, query, n):\n{body}```")


def test_a_run_with_llm_programs_over_frames(fake_openai, nextqa_root, tmp_path):
    from runners.run_video import VideoRunner
    from runners.rundir import prepare_run_dir

    fake_openai.responder = _program_reply
    config = _config(
        nextqa_root,
        vlm_model_name="classic",
        od_model="classic",
        program_generator="llm",
        code_gen_provider="vllm",
        code_gen_base_url=fake_openai.base_url,
        code_gen_model_name="fake-model",
        program_cache_address=str(tmp_path / "programs.json"),
        output_dir=str(tmp_path / "exp"),
        report="true",
        **{"video.frames_per_chunk": "4", "video.min_fps": "0.4", "video.max_frames": "4"},
    )
    run_dir = prepare_run_dir(config)
    summary = VideoRunner(config).run(run_dir)
    rows = {r["id"]: r for r in map(json.loads, (run_dir / "results.jsonl").read_text().splitlines())}
    assert summary["outcomes"]["ok"] == 6, summary
    for video, (_, red) in VIDEOS.items():
        row = rows[f"{video}_0"]
        assert row["pred"] == ("yes" if red else "no") and row["correct"] is True, row["trace"]
        assert row["program_info"]["task"] == "nextqa" and len(row["video"]["frames"]) == 4
    prompt = next(b for b in fake_openai.sample_requests() if "red square" in str(b["messages"][-1]["content"]))
    assert "locate(question: str" in prompt["messages"][0]["content"]  # the video prompt family's API
    assert summary["per_family"]["DO"]["accuracy"] == 100.0
    # the TN questions went to choose(), which the classic agent cannot read: said on the trace, p = 0.5
    tn = rows["4010069381_1"]
    assert tn["trace"][0]["primitive"] == "choose" and tn["trace"][0]["info"]["unknown_concepts"]
    from analysis.report import write_report

    assert write_report(run_dir).is_file()

    from analysis.tables import format_all, read_run

    text = format_all([read_run(run_dir)])
    assert "VLAgent Table 2" in text and "not VLAgent's sample of 200 questions per type" in text


def test_the_table_pools_temporal_and_causal_types(tmp_path):
    from analysis.tables import format_all, read_run

    run = tmp_path / "nextqa-run"
    run.mkdir()
    config = load_config(Path(__file__).resolve().parent.parent / "configs" / "nextqa.json")
    (run / "config.json").write_text(json.dumps(config.to_dict()))
    rows = []
    for qtype, n, right in [("TN", 10, 6), ("TC", 10, 8), ("TP", 5, 1), ("CW", 10, 9), ("CH", 10, 5), ("DO", 5, 5)]:
        rows += [{"id": f"{qtype}{i}", "family": qtype, "correct": i < right, "outcome": "ok"} for i in range(n)]
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = format_all([read_run(run)])
    line = next(ln for ln in text.splitlines() if "NePTune, this run" in ln and "nextqa-run" in ln)
    assert "60.00 (n=25)" in line and "70.00 (n=20)" in line and "68.00 (n=50)" in line
    assert "| VLAgent (paper) | 67.30 | 74.80 | 76.00 |" in text
