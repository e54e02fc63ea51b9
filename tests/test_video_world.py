"""The synthetic video world: scenarios, events, questions with reference answers, programs over frames,
and runs through runners/run_video.py with oracle and classic perception (tiny videos)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from code_generator.checks import check_program
from code_generator.video_translator import translate_video
from local_datasets.synthetic.video_dataset import make_video, settings_hash, world_dir
from local_datasets.synthetic.video_questions import FAMILIES, NoAnswer, reference_answer
from local_datasets.synthetic.video_world import GAP, MIN_EVENT_GAP, make_scenario
from neptune_core.config import load_config
from neptune_core.primitives.video_context import FrameSet
from neptune_core.video import VideoRef, read_frames
from neptune_core.video_config import VideoWorldConfig

TINY = VideoWorldConfig(num_videos=3, questions_per_video=4, seed=3, width=120, height=80, fps=4, seconds=5)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("world")
    return out, [make_video(out, TINY, i) for i in range(TINY.num_videos)]


def _gap(ann: dict, a: dict, b: dict) -> float:
    objs = {o["id"]: o for o in ann["objects"]}
    (xa, ya, _), (xb, yb, _) = a["3d_coords"], b["3d_coords"]
    from local_datasets.synthetic.scene import object_radius

    return math.hypot(xa - xb, ya - yb) - object_radius(objs[a["id"]]) - object_radius(objs[b["id"]])


def test_scenarios_keep_their_rules(world):
    _, anns = world
    for ann in anns:
        events = ann["events"]
        assert [e["frame"] for e in events] == sorted(e["frame"] for e in events)
        (hit,) = [e for e in events if e["type"] == "collide"]
        entries = [e for e in events if e["type"] in ("enter", "leave")]
        assert entries, "every video has something entering or leaving"
        for e in entries:  # never near another event (so no order is a tie)
            others = [x["frame"] for x in events if x is not e and x["type"] != "stop"]
            assert all(abs(e["frame"] - f) >= MIN_EVENT_GAP - 1 for f in others), (e, events)
        for frame in ann["frames"]:
            objs = frame["objects"]
            for i, a in enumerate(objs):
                for b in objs[i + 1 :]:
                    pair = {a["id"], b["id"]}
                    if pair != {hit["object"], hit["other"]}:
                        assert _gap(ann, a, b) >= GAP - 1e-3
                    assert _gap(ann, a, b) >= -1e-3  # coordinates are rounded to 4 places
        striker = [o for o in ann["frames"][hit["frame"]]["objects"] if o["id"] in (hit["object"], hit["other"])]
        assert len(striker) == 2 and abs(_gap(ann, *striker)) < 1e-3  # they touch at the collision frame
        assert {hit["object"], hit["other"]} in [set(p) for p in ann["frames"][hit["frame"]]["touching"]]
        names = [o["name"] for o in ann["objects"]]
        assert len(set(names)) == len(names) and len({o["color"] for o in ann["objects"]}) == len(names)


def test_the_same_seed_gives_the_same_world(world, tmp_path):
    _, anns = world
    again = make_video(tmp_path, TINY, 1)
    assert json.dumps(again, sort_keys=True) == json.dumps(anns[1], sort_keys=True)
    assert make_scenario(TINY, 0).tracks[0].obj == make_scenario(TINY, 0).tracks[0].obj


def test_questions_have_one_right_option_from_the_reference_executor(world):
    _, anns = world
    families = set()
    for ann in anns:
        for q in ann["questions"]:
            families.add(q["family"])
            assert q["qtype"] == FAMILIES[q["family"]]
            assert reference_answer(q["program"], ann) == q["answer_index"]
            assert len(q["options"]) == len(q["program"]["options"]) >= 3
            # the reference is independent of the option order
            prog = dict(q["program"], options=list(reversed(q["program"]["options"])))
            assert reference_answer(prog, ann) == len(q["options"]) - 1 - q["answer_index"]
    assert len(families) >= 3
    with pytest.raises(NoAnswer):  # an option that is not in the video
        reference_answer({"op": "why_moving", "target": "pink dragon", "options": []}, anns[0])


def test_programs_over_frames_answer_every_question_with_oracle_frames(world):
    """The translated program, run on frames decoded from the written video with the oracle's per-frame
    answers, picks the reference answer."""
    from runners.run_video import VideoExecutor, VideoRunner, option_index
    from vision_agents.video_oracle import VideoOracleAgent

    out, anns = world
    runner = VideoRunner(load_config(None, {"dataset": "video_synthetic"}))
    for ann in anns:
        T, fps = ann["num_frames"], ann["fps"]
        times = [(k + 0.5) / fps for k in range(T)]
        images = read_frames(VideoRef(str(out / ann["video"])), times)
        samples = []
        from neptune_core.types import Sample

        parent = Sample("v", "q", scene=ann)
        samples = [runner.frame_sample(parent, t, im) for t, im in zip(times, images, strict=True)]
        frames = FrameSet(times, images, [s.boxes for s in samples], samples)
        executor = VideoExecutor(runner.config.executor, runner.config.semantics, isolation="in_process")
        for q in ann["questions"]:
            source = translate_video(q["program"])
            assert check_program(source) == [], source
            outcome = executor.run_video(source, VideoOracleAgent(), frames, VideoOracleAgent())
            assert outcome.error is None, (q["question"], outcome.error)
            assert option_index(outcome.value, q["options"]) == q["answer_index"], q["question"]


def _config(tmp_path: Path, **extra) -> object:
    overrides = {
        "dataset": "video_synthetic",
        "program_generator": "symbolic_video",
        "vlm_model_name": "scene_oracle",
        "od_model": "gt",
        "output_dir": str(tmp_path / "exp"),
        "report": "false",
        "video.chunk_selection": "false",
        "video.frames_per_chunk": "20",
        "video.max_frames": "20",
        "video.world.num_videos": "2",
        "video.world.questions_per_video": "3",
        "video.world.seed": "3",
        "video.world.width": "120",
        "video.world.height": "80",
        "video.world.fps": "4",
        "video.world.seconds": "5",
    }
    overrides.update(extra)
    return load_config(None, overrides)


def test_an_oracle_run_is_exact_and_its_rows_say_what_was_watched(tmp_path):
    from runners.run_video import VideoRunner
    from runners.rundir import prepare_run_dir

    config = _config(tmp_path)
    run_dir = prepare_run_dir(config)
    summary = VideoRunner(config).run(run_dir)
    assert summary["num_samples"] == 6 and summary["accuracy"] == 100.0, summary
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    row = rows[0]
    assert row["outcome"] == "ok" and row["pred"] == row["gold"] and row["options"]
    video = row["video"]
    assert video["path"].endswith(".mp4") and video["fps"] == 4 and len(video["frames"]) == 20
    assert video["selection"]["decision"] == "one chunk: the whole video"
    assert len(video["boxes"]) == 20 and all(isinstance(b, list) for b in video["boxes"])
    assert {e["primitive"] for e in row["trace"]} <= {"score_frames", "locate", "clip"}
    assert (world_dir(config) / "world.json").is_file()
    # the same command again keeps every finished row
    again = VideoRunner(config).run(run_dir)
    assert again["this_invocation"]["processed"] == 0


def test_another_world_generator_never_resumes_old_rows(tmp_path, monkeypatch):
    from local_datasets.synthetic import video_dataset
    from runners.identity import data_identity

    config = _config(tmp_path)
    before = data_identity(config)["fingerprint"]
    monkeypatch.setattr(video_dataset, "FORMAT", video_dataset.FORMAT + 1)
    assert data_identity(config)["fingerprint"] != before
    assert settings_hash(config.video.world) != settings_hash(VideoWorldConfig())


def test_classic_perception_reads_presence_and_motion_from_pixels(tmp_path):
    """The classic video agent on one video (240x160, every frame), frame by frame against the annotation."""
    from local_datasets.synthetic.video_dataset import make_video as make
    from vision_agents.classic_detector import ClassicDetector
    from vision_agents.classic_video import ClassicVideoAgent

    cfg = VideoWorldConfig(seed=1, fps=6, seconds=3)
    ann = make(tmp_path, cfg, 0)
    T, fps = ann["num_frames"], ann["fps"]
    times = [(k + 0.5) / fps for k in range(T)]
    images = read_frames(VideoRef(str(tmp_path / ann["video"])), times)
    detector = ClassicDetector()
    frames = FrameSet(times, images, [detector.detect(im, []).boxes for im in images])
    agent = ClassicVideoAgent()
    right = total = 0
    for o in ann["objects"]:
        there, _ = agent.score_frames(frames, f"Is there a {o['name']}?", 0)
        moving, _ = agent.score_frames(frames, f"Is the {o['name']} moving?", 0)
        for k, frame in enumerate(ann["frames"]):
            state = [x for x in frame["objects"] if x["id"] == o["id"]]
            right += (there[k].item() > 0.5) == bool(state)
            right += (moving[k].item() > 0.5) == bool(state and state[0]["moving"])
            total += 2
    assert right / total >= 0.8, right / total
