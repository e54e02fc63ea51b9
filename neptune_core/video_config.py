"""The ``video`` section of a run config: frame sampling, VLAgent's long-video chunk selection,
and the synthetic video world (dataset ``video_synthetic``).

Chunk selection (runners/chunk_selection.py, VLAgent section 2.2): a video of ``l`` seconds is
split into ``ceil(min_fps * l / frames_per_chunk)`` chunks; each chunk is captioned from
``frames_per_chunk`` frames by ``captioner``; the LLMs in ``select_models`` (an ensemble when
more than one) score each chunk's relevance to the question; when no chunk reaches
``relevance_threshold`` (or every chunk does: the whole video must be watched) new frames are
sampled and the round repeats, at most ``max_rounds`` rounds. The chosen chunks, in time order,
give the program ``frames_per_chunk`` frames each (at most ``max_frames`` in all).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class VideoWorldConfig:
    """The synthetic video world generated on the fly (dataset ``video_synthetic``)."""

    num_videos: int = 20
    questions_per_video: int = 5
    seed: int = 0
    width: int = 240
    height: int = 160
    fps: float = 8.0
    seconds: float = 3.0
    min_objects: int = 4
    max_objects: int = 5
    cache_dir: str = ""  # where videos are written; "" = <output_dir>/_video_worlds/<hash of these settings>


@dataclass
class VideoConfig:
    """How a video sample becomes the frames a program sees (see the module docstring)."""

    max_frames: int = 16  # frames the program sees at most (chosen chunks x frames_per_chunk, evenly thinned)
    frames_per_chunk: int = 8  # VLAgent's f: frames sampled per chunk (captioning, and the program)
    min_fps: float = 1.0  # VLAgent's v: the sampling rate a chunk must reach; sets the number of chunks
    max_rounds: int = 3  # VLAgent's t: resampling rounds when no chunk (or every chunk) is relevant
    chunk_selection: bool = True  # False: frames_per_chunk x chunks evenly over the whole video, no LLM
    relevance_threshold: float = 0.5  # mean relevance (0..1) a chunk needs to be chosen
    select_models: list[str] = field(default_factory=list)  # LLMs judging relevance ([] = code_gen_model_name)
    select_provider: str = ""  # "" = code_gen_provider
    select_base_url: str = ""  # "" = code_gen_base_url
    captioner: str = "florence2"  # a captioner (vision_agents/captioners.py) for chunk captions
    captioner_model: str = ""
    captioner_base_url: str = ""
    frame_max_side: int = 640  # decoded frames are scaled down to this longer side (0: full size)
    world: VideoWorldConfig = field(default_factory=VideoWorldConfig)

    def __post_init__(self) -> None:
        if self.frames_per_chunk < 1 or self.max_frames < 1:
            raise ValueError("video.frames_per_chunk and video.max_frames must be >= 1")
        if self.min_fps <= 0:
            raise ValueError(f"video.min_fps must be > 0, got {self.min_fps}")
        if self.max_rounds < 1:
            raise ValueError(f"video.max_rounds must be >= 1, got {self.max_rounds}")
        if not 0.0 <= self.relevance_threshold <= 1.0:
            raise ValueError(f"video.relevance_threshold must be in [0, 1], got {self.relevance_threshold}")


__all__ = ["VideoConfig", "VideoWorldConfig"]
