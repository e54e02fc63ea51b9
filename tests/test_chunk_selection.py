"""VLAgent's long-video chunk selection against a fake OpenAI-compatible server.

The server (tests/fake_openai_server.py) plays the captioner (the real ``openai_vlm`` captioner
client sends it each frame) and the relevance judge (the real chat client); tests/video_fakes.py
says what they answer: a frame showing the red square is captioned so, and the judge calls a
chunk relevant when its captions mention the red square. The video has the red square at
22-27 s only; the selection must pick the chunks holding it.
"""

from __future__ import annotations

import json

import pytest

from local_datasets.multiple_choice import mc_meta, with_options
from neptune_core.config import load_config
from neptune_core.types import Sample
from neptune_core.video import VideoReader, VideoRef
from runners.chunk_selection import ChunkSelector, SelectionError, parse_relevance, program_times
from tests import fake_openai_server
from tests.fake_openai_server import error, reply
from tests.video_fakes import make_event_video, relevance_reply, video_responder

fake_openai = fake_openai_server.fake_openai
EVENT = (22.0, 27.0)
PROGRAM = """def execute(score, query, n):
    options = ["yes", "no"]
    return 0 if score_frames("Is there a red square?").exists("t").item() > 0.5 else 1
"""


@pytest.fixture(scope="module")
def event_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "event.mp4"
    make_event_video(path, 40.0, 4, (96, 64), EVENT, gop=8)
    return path


def _config(server, tmp_path, **extra):
    overrides = {
        "dataset": "nextqa",
        "vlm_model_name": "classic",
        "od_model": "classic",
        "program_generator": "given",
        "code_gen_provider": "vllm",
        "code_gen_base_url": server.base_url,
        "code_gen_model_name": "fake-model",
        "code_gen_http_retries": "0",
        "output_dir": str(tmp_path / "exp"),
        "report": "false",
        "video.frames_per_chunk": "4",
        "video.min_fps": "0.5",  # 40 s -> ceil(0.5 * 40 / 4) = 5 chunks of 8 s
        "video.max_rounds": "3",
        "video.captioner": "openai_vlm",
        "video.captioner_base_url": server.base_url,
    }
    overrides.update(extra)
    return load_config(None, overrides)


def _sample(path) -> Sample:
    question, options = "Does a red square appear in the video?", ["yes", "no"]
    return Sample(
        "event",
        with_options(question, options),
        answer="yes",
        video=VideoRef(str(path)),
        program=PROGRAM,
        meta=mc_meta(question, options, 0, family="test"),
    )


def _select(config, path):
    with VideoReader(str(path)) as reader:
        return ChunkSelector.from_config(config).select(_sample(path), reader, lambda t, im: None)


def test_the_chunks_holding_the_event_are_chosen_in_time_order(fake_openai, event_video, tmp_path):
    fake_openai.responder = video_responder
    selection = _select(_config(fake_openai, tmp_path), event_video)
    record = selection.record
    assert len(record["chunks"]) == 5 and record["chunks"][2] == [16.0, 24.0]
    assert record["chosen"] == [2, 3] and selection.spans == [(16.0, 24.0), (24.0, 32.0)]
    (rnd,) = record["rounds"]
    assert rnd["verdict"] == "chosen" and rnd["phase"] == 0.5
    assert rnd["frames"][2] == [17.0, 19.0, 21.0, 23.0]
    assert "red square" in rnd["captions"][2] and "red square" in rnd["captions"][3]
    assert "red square" not in rnd["captions"][0]
    assert rnd["votes"][0]["relevance"] == [0.0, 0.0, 1.0, 1.0, 0.0] and rnd["votes"][0]["model"] == "fake-model"
    # the program sees frames_per_chunk frames of each chosen chunk, in time order
    assert selection.times == [17.0, 19.0, 21.0, 23.0, 25.0, 27.0, 29.0, 31.0]
    judge = [b for b in fake_openai.sample_requests() if "Chunk 1 (" in str(b["messages"][-1]["content"])]
    assert len(judge) == 1 and "Does a red square appear" in judge[0]["messages"][-1]["content"]


def test_when_no_chunk_stands_out_new_frames_are_sampled(fake_openai, event_video, tmp_path):
    asked: list[str] = []

    def responder(body):
        text = str(body["messages"][-1]["content"])
        if "Chunk 1 (" in text:
            asked.append(text)
            if len(asked) == 1:  # round 1: nothing relevant
                return reply(json.dumps({"relevance": [0, 0, 0, 0, 0]}))
        return video_responder(body)

    fake_openai.responder = responder
    record = _select(_config(fake_openai, tmp_path, **{"video.relevance_threshold": "0.4"}), event_video).record
    assert [r["verdict"] for r in record["rounds"]] == ["none relevant", "chosen"]
    assert [r["phase"] for r in record["rounds"]] == [0.5, 0.25]
    assert record["rounds"][1]["frames"][2] == [16.5, 18.5, 20.5, 22.5]  # other frames than round 1
    # scores are the mean over every vote so far: 0.5 for the event's chunks after two rounds
    assert record["scores"] == [0.0, 0.0, 0.5, 0.5, 0.0] and record["chosen"] == [2, 3]
    assert "round 2" in record["decision"]


def test_an_ensemble_of_judges_votes(fake_openai, event_video, tmp_path):
    def responder(body):
        text = str(body["messages"][-1]["content"])
        if "Chunk 1 (" in text and body["model"] == "judge-b":  # this one wants the whole video
            return reply(json.dumps({"relevance": [1, 1, 1, 1, 1]}))
        if "Chunk 1 (" in text:
            return reply(relevance_reply(text))
        return video_responder(body)

    fake_openai.responder = responder
    fake_openai.models = ["fake-model", "judge-a", "judge-b"]
    config = _config(
        fake_openai,
        tmp_path,
        **{
            "video.select_models": "judge-a,judge-b",
            "video.relevance_threshold": "0.75",
            "video.captioner_model": "fake-model",
        },
    )
    record = _select(config, event_video).record
    (rnd,) = record["rounds"]
    assert [v["model"] for v in rnd["votes"]] == ["judge-a", "judge-b"]
    assert rnd["scores"] == [0.5, 0.5, 1.0, 1.0, 0.5] and record["chosen"] == [2, 3]


def test_after_max_rounds_without_a_standout_the_best_chunk_is_taken(fake_openai, event_video, tmp_path):
    def responder(body):
        if "Chunk 1 (" in str(body["messages"][-1]["content"]):
            return reply('{"relevance": [0.1, 0.3, 0.2, 0.0, 0.1]}')
        return video_responder(body)

    fake_openai.responder = responder
    record = _select(_config(fake_openai, tmp_path, **{"video.max_rounds": "2"}), event_video).record
    assert [r["verdict"] for r in record["rounds"]] == ["none relevant", "none relevant"]
    assert record["chosen"] == [1] and "no chunk stood out in 2 rounds" in record["decision"]


def test_unusable_replies_fall_back_to_the_whole_video_and_say_so(fake_openai, event_video, tmp_path):
    def responder(body):
        if "Chunk 1 (" in str(body["messages"][-1]["content"]):
            return reply("chunk three looks relevant to me")
        return video_responder(body)

    fake_openai.responder = responder
    selection = _select(_config(fake_openai, tmp_path, **{"video.max_rounds": "2"}), event_video)
    assert (
        selection.record["chosen"] == [0, 1, 2, 3, 4] and "no LLM reply could be used" in selection.record["fallback"]
    )
    assert all(v["error"].startswith("unusable reply") for r in selection.record["rounds"] for v in r["votes"])
    assert len(selection.times) == 16  # video.max_frames: 5 chunks x 4 frames thinned evenly


def test_a_judge_that_cannot_be_reached_makes_the_sample_transient(fake_openai, event_video, tmp_path):
    from runners.run_video import VideoRunner

    def responder(body):
        if "Chunk 1 (" in str(body["messages"][-1]["content"]):
            return error(503, "overloaded")
        return video_responder(body)

    fake_openai.responder = responder
    config = _config(fake_openai, tmp_path, **{"video.max_rounds": "1"})
    with pytest.raises(SelectionError) as info:
        _select(config, event_video)
    assert info.value.transient
    runner = VideoRunner(config)
    runner.prepare([_sample(event_video)], check_models=False)
    row = runner.process(_sample(event_video))
    assert row["outcome"] == "error" and row["error"]["stage"] == "select" and row["final"] is False


def test_a_run_watches_the_chosen_chunks_and_answers(fake_openai, event_video, tmp_path):
    from runners.run_video import VideoRunner

    fake_openai.responder = video_responder
    runner = VideoRunner(_config(fake_openai, tmp_path))
    runner.prepare([_sample(event_video)])  # preflight: the captioner's server and the judge's endpoint
    row = runner.process(_sample(event_video))
    assert row["outcome"] == "ok" and row["correct"] is True and row["pred"] == "yes"
    assert row["video"]["selection"]["chosen"] == [2, 3]
    assert all(16.0 <= t < 32.0 for t in row["video"]["frames"])
    assert runner.invocation_stats(1)["selection_llm_requests"] == 1
    # one whole-frame question on every frame the program saw: that many model calls on the row
    assert row["model_calls"]["by_arity"]["0"] == len(row["video"]["frames"]) == row["model_calls"]["box_evals"]
    runner.executor.close()


def test_parse_relevance_and_program_times():
    assert parse_relevance('Sure: {"relevance": [0, 1, 0.5]}', 3) == [0.0, 1.0, 0.5]
    assert parse_relevance('{"relevance": [0, 10, 5]}', 3) == [0.0, 1.0, 0.5]  # a 0-10 scale
    assert parse_relevance('{"chunks": [2]}', 3) == [0.0, 1.0, 0.0]
    for bad in ("no json", '{"relevance": [1, 2]}', '{"other": 1}', '{"relevance": ["a", 1, 2]}'):
        with pytest.raises(ValueError):
            parse_relevance(bad, 3)
    assert program_times([(10.0, 14.0), (0.0, 4.0)], 2, 8) == [1.0, 3.0, 11.0, 13.0]
    assert program_times([(0.0, 8.0)], 8, 4) == [1.5, 3.5, 5.5, 7.5]
