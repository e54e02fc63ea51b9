"""The frame primitives (score_frames, query_frame, locate, clip, query_video, choose) over a scripted video agent.

The video agent is a fake with per-frame probabilities from a table; the primitives, the
algebra over the frame variable "t", the sandbox process and the executor are the real ones.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from code_generator.checks import check_program
from neptune_core.config import ExecutorConfig
from neptune_core.executor import Executor
from neptune_core.primitives import VIDEO_PRIMITIVES, all_primitives, render_entry
from neptune_core.primitives.video_context import FrameSet, first_occurrence, last_occurrence
from probabilistic_tensor import ProbabilisticTensor, Semantics
from runners.run_video import VideoExecutor, option_index
from vision_agents.base import VisionAgent
from vision_agents.video_agents import FramewiseVideoAgent, VideoAgent

EVENTS = {
    "Is the dog in the room?": [0.0, 0.1, 0.9, 0.95, 0.2],
    "Is the cat eating?": [0.8, 0.1, 0.1, 0.1, 0.9],
    "Is it raining?": [0.1, 0.2, 0.1, 0.3, 0.2],
    "Is this a person?": [0.9, 0.8, 0.7, 0.6, 0.5],
}


class ScriptedVideoAgent(VideoAgent):
    """p(yes) per frame from :data:`EVENTS` (every box of a frame gets its frame's value); answers name the frame."""

    name = "scripted"

    def __init__(self, grad: bool = False) -> None:
        self.calls: list[tuple[str, int]] = []
        self.grad = grad
        self.leaf: torch.Tensor | None = None

    def score_frames(self, frames, question, arity):
        self.calls.append((question, arity))
        p = torch.tensor(EVENTS[question])
        if self.grad:
            self.leaf = p.clone().requires_grad_(True)
            p = self.leaf * 1.0
        n = frames.max_boxes
        if arity == 0:
            return p, [{} for _ in frames.times]
        out = torch.zeros((len(frames),) + (n,) * arity)
        for k, boxes in enumerate(frames.boxes):
            m = len(boxes)
            if arity == 1:
                out[k, :m] = p[k]
            else:
                out[k, :m, :m] = p[k]
        return out, [{"unknown_concepts": ["raining"]} if "raining" in question else {} for _ in frames.times]

    def answer_frame(self, frames, k, box, question):
        return f"frame {k}", {}

    def choose(self, frames, indices, question, options):
        return torch.tensor([0.2 + 0.1 * i for i in range(len(options))]), {"frames": indices}


def _frames(n: int = 5) -> FrameSet:
    images = [Image.new("RGB", (32, 24), (40 * k, 0, 0)) for k in range(n)]
    boxes = [[[0.0, 0.0, 5.0, 5.0]] * (1 + k % 3) for k in range(n)]  # 1, 2, 3, 1, 2 boxes
    return FrameSet([0.5 + k for k in range(n)], images, boxes)


class _NoImages(VisionAgent):
    def score(self, image, boxes, questions, arity):
        raise AssertionError("no image-level call expected")

    def answer(self, image, box, question):
        raise AssertionError("no image-level call expected")


def _run(source: str, isolation: str = "in_process", agent: VideoAgent | None = None):
    agent = agent or ScriptedVideoAgent()
    executor = VideoExecutor(ExecutorConfig(isolation=isolation), Semantics())
    try:
        outcome = executor.run_video(source, _NoImages(), _frames(), agent)
    finally:
        executor.close()
    return outcome, agent


def _program(body: str) -> str:
    return "def execute(score, query, n):\n" + "".join(f"    {line}\n" for line in body.strip().splitlines())


def test_the_frame_primitives_are_declared_once_and_listed_for_video_prompts_only():
    prims = all_primitives()
    assert set(VIDEO_PRIMITIVES) <= set(prims)
    from code_generator.prompting import api_section

    image_api, video_api = api_section(), api_section(video=True)
    for name in VIDEO_PRIMITIVES:
        assert f"{name}(" not in image_api and f"{name}(" in video_api
        assert prims[name].doc.splitlines()[0] in video_api


@pytest.mark.parametrize("isolation", ["in_process", "process"])
def test_score_frames_quantifies_over_frames(isolation):
    outcome, agent = _run(
        _program(
            'return [score_frames("Is the dog in the room?").exists("t"), score_frames("Is it raining?").exists("t")]'
        ),
        isolation,
    )
    assert outcome.error is None, outcome.error
    dog, rain = outcome.value
    assert dog.item() == pytest.approx(0.95) and rain.item() == pytest.approx(0.3)
    entry = outcome.trace[0]
    assert entry["primitive"] == "score_frames" and entry["times"] == [0.5, 1.5, 2.5, 3.5, 4.5]
    assert entry["probs"] == EVENTS["Is the dog in the room?"]
    assert outcome.trace[1]["probs"] == EVENTS["Is it raining?"]


def test_boxes_per_frame_are_padded_so_counts_per_frame_are_right():
    outcome, _ = _run(_program('return score_frames("Is this a person?", 1).count("x")'))
    assert outcome.error is None, outcome.error
    counts = outcome.value.tolist()  # 1, 2, 3, 1, 2 boxes times the frame's p
    expected = [p * m for p, m in zip(EVENTS["Is this a person?"], [1, 2, 3, 1, 2], strict=True)]
    assert counts == pytest.approx(expected)
    assert outcome.value.vars == ("t",) and outcome.value.kind == "number"


def test_locate_first_last_and_peak():
    outcome, agent = _run(
        _program(
            """
q = "Is the dog in the room?"
return [locate(q).argmax(), locate(q, "last").argmax(), locate(q, "peak").argmax(), locate(q)]
"""
        )
    )
    assert outcome.error is None, outcome.error
    first, last, peak, dist = outcome.value
    assert (first, last, peak) == (2, 3, 3)
    assert dist.vars == ("t",) and sum(dist.tolist()) <= 1.0 + 1e-6
    assert agent.calls == [("Is the dog in the room?", 0)]  # per-frame scores are memoised per question
    assert [e["frame"] for e in outcome.trace] == [2, 3, 3, 2] and outcome.trace[0]["found"] is True


def test_soft_first_and_last_occurrence():
    p = torch.tensor([0.0, 0.5, 1.0, 1.0])
    assert first_occurrence(p).tolist() == pytest.approx([0.0, 0.5, 0.5, 0.0])
    assert last_occurrence(p).tolist() == pytest.approx([0.0, 0.0, 0.0, 1.0])


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("before", [1, 1, 0, 0, 0]),
        ("after", [0, 0, 0, 1, 1]),
        ("around", [0, 1, 1, 1, 0]),
        ("at", [0, 0, 1, 0, 0]),
    ],
)
def test_clip_masks_frames_around_a_frame(where, expected):
    outcome, _ = _run(_program(f'return [clip(2, "{where}", 1), clip(-3, "{where}", 1)]'))
    assert outcome.error is None, outcome.error
    assert outcome.value[0].tolist() == expected and outcome.value[1].tolist() == expected
    assert outcome.trace[0]["frames_in_clip"] == [i for i, v in enumerate(expected) if v]


def test_before_the_frame_where_something_happens():
    # the cat eats at frames 0 and 4; the dog comes in at frame 2: the cat ate before the dog came,
    # and it is not raining in any frame before it
    outcome, _ = _run(
        _program(
            """
before = clip(locate("Is the dog in the room?"), "before")
ate = (score_frames("Is the cat eating?") & before).exists("t")
rained = (score_frames("Is it raining?") & before).exists("t")
return [ate, rained, before]
"""
        )
    )
    assert outcome.error is None, outcome.error
    ate, rained, before = outcome.value
    assert ate.item() > 0.5 > rained.item()
    # P(frame t comes before the dog's first frame): 1 at frame 0, 0.9 at frame 1 (it may have come then)
    assert before.tolist()[:2] == pytest.approx([1.0, 0.8997], abs=1e-3) and max(before.tolist()[3:]) < 0.01
    assert outcome.trace[1]["primitive"] == "clip" and outcome.trace[1]["soft"] is True


def test_query_frame_query_video_and_choose():
    outcome, _ = _run(
        _program(
            """
when = locate("Is the dog in the room?")
a = query_frame("What is here?", when)
b = query_frame("What is here?", -1, 0)
c = query_video("What happens?", clip(when, "after"))
d = choose("Why?", ["x", "y", "z"], clip(1, "around"))
return [a, b, c, d]
"""
        )
    )
    assert outcome.error is None, outcome.error
    a, b, c, d = outcome.value
    assert (a, b) == ("frame 2", "frame 4")
    assert c == "frame 3"  # frames 3 and 4 each answer once: the earliest wins the tie
    assert isinstance(d, ProbabilisticTensor) and d.vars == ("o",) and option_index(d, ["x", "y", "z"]) == 2
    entries = {e["primitive"]: e for e in outcome.trace}
    assert entries["query_video"]["frames"] == [3, 4] and entries["choose"]["frames"] == [0, 1, 2, 3]
    for entry in outcome.trace:
        assert render_entry(entry).strip()


def test_framewise_agent_votes_over_the_clip_and_scores_options_per_frame():
    class Agent(VisionAgent):
        def score(self, image, boxes, questions, arity):
            red = image.getpixel((0, 0))[0] / 255
            return torch.full((len(questions),) + (len(boxes),) * arity, red)

        def answer(self, image, box, question):
            return "red" if image.getpixel((0, 0))[0] > 100 else "dark"

    video = FramewiseVideoAgent(Agent())
    frames = _frames()
    answer, info = video.answer_clip(frames, [0, 1, 2, 3, 4], "What colour?")
    assert answer == "dark" and info["votes"] == {"dark": 3, "red": 2}  # frames 3 and 4 are red enough
    assert video.answer_clip(frames, [2, 3, 4], "What colour?")[0] == "red"
    p, info = video.choose(frames, [3, 4], "Which?", ["a", "b"])
    assert p.tolist() == pytest.approx([(120 + 160) / 2 / 255] * 2, abs=1e-6)
    assert "mean" in info["how"]
    scores, _ = video.score_frames(frames, "Is it red?", 1)
    assert scores.shape == (5, 3) and scores[0].tolist() == pytest.approx([0.0, 0.0, 0.0])  # frame 0: black
    assert scores[2, 2].item() == pytest.approx(80 / 255) and scores[3, 1].item() == 0.0  # padding


def test_gradients_flow_from_a_quantified_answer_into_the_frame_scores():
    agent = ScriptedVideoAgent(grad=True)
    outcome, _ = _run(_program('return score_frames("Is the cat eating?").exists("t")'), agent=agent)
    assert outcome.error is None, outcome.error
    outcome.value.data.backward()
    assert agent.leaf is not None and agent.leaf.grad.tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('return query_frame("What?", 9)', "frame 9 is out of range"),
        ('return query_frame("What?", 0, 4)', "object_id 4 is out of range"),
        ('return clip(2, "during")', "where must be one of"),
        ('return locate("Is it?", "middle")', "which must be one of"),
        ('return choose("Why?", ["only one"])', "2 to 10 strings"),
        ('return query_video("What?", clip(0, "before"))', "the clip holds no frame"),
        ('return clip(score_frames("Is it raining?", 1), "after")', "frame variable 't'"),
    ],
)
def test_bad_calls_are_the_programs_errors(body, message):
    outcome, _ = _run(_program(body), isolation="process")
    assert outcome.error is not None and message in outcome.error.message, outcome.error


def test_on_an_image_sample_the_frame_primitives_say_they_need_a_video():
    executor = Executor(ExecutorConfig(isolation="in_process"), Semantics())
    outcome = executor.run(_program('return locate("Is it?")'), _NoImages(), Image.new("RGB", (8, 8)), [])
    assert outcome.error is not None and "needs a video sample" in outcome.error.message


def test_the_auditor_checks_frame_primitive_calls():
    bad = _program(
        """
a = score_frames("Is it?", 3)
b = locate("Is it?", "middle")
c = clip(b, "during")
d = choose("Why?", "a or b")
e = query_frame("What?")
return a
"""
    )
    problems = "\n".join(check_program(bad))
    assert "num_objects must be one of the literals 0, 1, 2" in problems
    assert "which must be one of" in problems and "where must be one of" in problems
    assert "choose's options must be a list" in problems
    assert "query_frame needs (question, frame)" in problems
    good = _program('return choose("Why?", ["a", "b"], clip(locate("Is it?"), "after"))')
    assert check_program(good) == []


def test_the_multiple_choice_judge_reads_what_a_program_returns():
    options = ["2", "3", "to wash it", "4"]
    assert option_index(1, options) == 1  # an index
    assert option_index("3", options) == 1  # an option's text first (options may be numbers)
    assert option_index("To wash it.", options) == 2
    assert option_index("(b)", options) == 1 and option_index("D", options) == 3  # a letter
    assert option_index(ProbabilisticTensor(torch.tensor([0.1, 0.2, 0.9, 0.3]), vars=("o",)), options) == 2
    assert option_index(True, ["no", "yes"]) == 1  # a yes/no value for yes/no options
    for bad, message in [(7, "there are 4 options"), ("to dry it", "names none"), (True, "names none")]:
        with pytest.raises(ValueError, match=message):
            option_index(bad, options)
    with pytest.raises(ValueError, match="tensor over 2 values for 4 options"):
        option_index(ProbabilisticTensor(torch.tensor([0.1, 0.2]), vars=("o",)), options)
