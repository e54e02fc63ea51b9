"""Typed run configuration: JSON file -> dataclass, plus ``--key value`` overrides.

Unknown keys are rejected with a "did you mean" hint; values are converted to the
field's type; nested sections use dotted keys (``--semantics.tau 0.5``). The config
is passed explicitly to whatever needs it; there is no global config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neptune_core.calls_config import CallsConfig, hashed_section
from neptune_core.errors import ConfigError
from neptune_core.perception_config import DepthConfig, MarkingConfig, hashed_perception
from neptune_core.registry import did_you_mean
from neptune_core.sampler_config import SamplerConfig
from neptune_core.verify_config import EnsembleConfig, VerifyConfig
from neptune_core.video_config import VideoConfig
from probabilistic_tensor.semantics import Semantics

ISOLATIONS = ("process", "in_process")


@dataclass
class ExecutorConfig:
    """Limits of the program sandbox (see neptune_core/executor/__init__.py for what each bounds)."""

    time_limit_s: float = 2.0  # program time (time inside score/query does not count)
    max_operations: int = 100_000
    max_sequence_length: int = 100_000
    max_call_depth: int = 50
    isolation: str = "process"  # process: a sandbox process with OS limits | in_process: trusted programs, gradients
    memory_mb: int = 1024  # the sandbox process's memory limit, its ~250 MB of Python and torch included
    max_question_chars: int = 1000  # longest question a program may pass to a primitive
    max_primitive_calls: int = 1000  # primitive calls per program run
    max_trace_entries: int = 200  # trace entries kept per row; the rest are counted in a marker entry
    max_result_size: int = 10_000  # elements (items, characters, tensor values) of what execute returns
    max_row_bytes: int = 2_000_000  # a result row's JSON size; larger rows are shrunk, then become error rows
    score_ahead: int = 16  # literal score calls a program cannot skip, evaluated before it in one batch (0: off)

    def __post_init__(self) -> None:
        if self.isolation not in ISOLATIONS:
            raise ValueError(f"executor.isolation must be one of {', '.join(ISOLATIONS)}, got {self.isolation!r}")
        if self.score_ahead < 0:
            raise ValueError(f"executor.score_ahead must be 0 (off) or more, got {self.score_ahead}")
        if self.memory_mb < 256:
            raise ValueError(
                f"executor.memory_mb must be at least 256 (Python and torch alone need ~250), got {self.memory_mb}"
            )


@dataclass
class SyntheticConfig:
    """The synthetic CLEVR-style world generated on the fly (dataset "clevr_synthetic")."""

    num_scenes: int = 100
    questions_per_scene: int = 10
    seed: int = 0
    image_width: int = 480
    image_height: int = 320
    min_objects: int = 3
    max_objects: int = 8


@dataclass
class JudgeConfig:
    """The LLM judge of ``--evaluate`` (not part of the config hash: it never changes a run's results)."""

    base_url: str = ""  # "" = the provider's default (deepseek, openai, vllm: http://localhost:8000/v1)
    timeout_s: float = 60.0  # per request
    retries: int = 6  # retries of one request on 429 / 5xx / timeout / connection error / junk reply
    backoff_s: float = 1.0  # first backoff; doubles per retry
    max_backoff_s: float = 60.0


_PLACEMENT = ("cluster", "ray_address", "ray_batch_size")  # where samples run, never what they give


@dataclass
class LoraConfig:
    """LoRA adapters (peft) on the VLM's language model, for ``train.method`` "lora"."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    scope: str = "language_model"  # adapters go only into modules whose path contains this ("" = anywhere)


@dataclass
class TrainConfig:
    """Fine-tuning through programs (runners/train.py): epochs over a training split, then evaluation."""

    enabled: bool = False
    split: str = "train"  # the training split of the same dataset (evaluation uses ``split``)
    num_samples: int = -1  # training samples (-1 = all)
    num_scenes: int = 0  # synthetic world: scenes of the training split (0 = synthetic.num_scenes)
    seed: int = 0  # shuffling and initialisation
    epochs: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.0
    scheduler: str = "cosine"  # transformers.get_scheduler name: cosine | linear | constant_with_warmup | ...
    warmup_steps: int = 0  # optimizer steps of linear warm-up
    grad_accum: int = 8  # samples per optimizer step
    max_grad_norm: float = 1.0  # 0 = no clipping
    method: str = "auto"  # auto (lora for transformers VLMs, all for the classic heads) | lora | subset | all
    parameters: list[str] = field(default_factory=list)  # method "subset": regexes of parameter names to train
    lora: LoraConfig = field(default_factory=LoraConfig)
    bf16: bool = True  # bf16 autocast when training on a CUDA device
    gradient_checkpointing: bool = False
    evaluate_before: bool = True  # evaluate the untrained model first (run_dir/before/)
    keep_checkpoints: int = 2  # epoch checkpoints kept in run_dir/checkpoints/ (the newest ones)
    torch_threads: int = 0  # CPU threads of torch while training and evaluating (0 = torch's default)


@dataclass
class RunConfig:
    """Everything a run needs. Field names follow the original release where it had them."""

    dataset: str = "clevr_synthetic"
    data_root: str = ""  # base for relative data paths; falls back to $NEPTUNE_DATA_ROOT
    data_path: str = ""  # dataset location, relative to data_root (or absolute)
    split: str = "val"
    split_by: str = ""  # REFER annotations: refs(<split_by>).p (umd, google, unc, utokyo); "" = the only one
    image_dir: str = ""  # images, relative to data_root; "" = the layout's default place
    questions_file: str = ""  # CLEVR-Transfer questions (LEFT layout), relative to data_root; a glob is allowed
    num_samples: int = -1  # -1 = all
    seed: int = 0
    box_format: str = "xyxy"  # boxes in the data (jsonl, hf): "xyxy" or "xywh" (pixels)
    # dataset "hf" (local_datasets/hf.py): a Hugging Face `datasets` dataset
    hf_path: str = ""  # a save_to_disk directory, parquet file(s) or directory (relative to data_root), or a hub id
    hf_subset: str = ""  # the hub dataset's configuration name, if it has several
    hf_split: str = ""  # "" = the only split
    hf_columns: dict[str, str] = field(default_factory=dict)  # our field -> column (image, question, answer, ...)
    given_programs: str = ""  # program_generator "given": a JSON file {sample id: program} (relative to data_root)

    vlm_model_name: str = "scene_oracle"
    vlm_base_url: str = ""
    vlm_batch_size: int = 16
    vlm_trainable: bool = False  # score with autograd on (fine-tuning the VLM through programs)
    vlm_adapter: str = ""  # trained weights loaded on top: a LoRA adapter directory, or classic heads (JSON)
    classic_params: str = "fitted"  # the classic agent's class models: fitted | weak | a JSON path
    device: str = "auto"  # auto | cpu | cuda | cuda:N

    od_model: str = "gt"
    od_box_threshold: float = 0.35
    od_text_threshold: float = 0.25
    od_nms_iou: float = 0.5
    segmenter: str = ""  # masks from boxes: sam_base ... sam2_large, scene_masks (synthetic oracle), a hub id; "" none
    depth_model: str = ""  # closer(): depth_anything_v2_small ..., scene_depth (synthetic oracle), a hub id; "" none

    program_generator: str = "symbolic_clevr"
    code_gen_model_name: str = "deepseek/deepseek-v3.2"
    code_gen_provider: str = "openrouter"
    code_gen_base_url: str = ""
    code_gen_temperature: float = 0.0
    code_gen_max_retries: int = 2
    program_cache_address: str = ""
    code_gen_timeout_s: float = 120.0  # per LLM request
    code_gen_concurrency: int = 8  # LLM requests in flight at once (per process)
    code_gen_http_retries: int = 5  # retries of one request on 408 / 409 / 429 / 5xx / timeout / connection errors
    code_gen_backoff_s: float = 1.0  # first backoff; doubles per retry, with jitter
    code_gen_max_backoff_s: float = 60.0
    code_gen_max_tokens: int = 2048

    output_dir: str = "experiments"
    run_name: str = ""
    workers: int = 1
    cluster: str = "local"  # local (processes, static shards) | ray (actors, a shared queue: runners/ray_cluster.py)
    ray_address: str = ""  # --cluster ray: "" = start a local Ray instance; "auto" or "host:6379" = join a cluster
    ray_batch_size: int = 4  # --cluster ray: samples handed to an actor at a time (small: fast actors take more)
    report: bool = True
    max_failure_rate: float = 0.05  # errored + fallback share above which a run is degraded (exit code 3)

    semantics: Semantics = field(default_factory=Semantics)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)  # vlm_model_name / od_model "ensemble"
    verify: VerifyConfig = field(default_factory=VerifyConfig)  # output verifiers after execution
    train: TrainConfig = field(default_factory=TrainConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)  # lazy relations, memo, caches, tensor marking
    marking: MarkingConfig = field(default_factory=MarkingConfig)  # box | mask_outline | mask_overlay | crop
    depth: DepthConfig = field(default_factory=DepthConfig)  # the closer() primitive's depths and temperature
    sampler: SamplerConfig = field(default_factory=SamplerConfig)  # seeded subset of the dataset (selection.json)
    video: VideoConfig = field(default_factory=VideoConfig)  # video samples: frames, chunk selection, video world

    # ---- derived ---------------------------------------------------------------
    def resolve_path(self, path: str) -> Path:
        """``path`` made absolute against data_root (config, else $NEPTUNE_DATA_ROOT, else cwd)."""
        p = Path(os.path.expanduser(path))
        if p.is_absolute():
            return p
        root = self.data_root or os.environ.get("NEPTUNE_DATA_ROOT", "")
        return Path(root) / p if root else p

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        """A short hash of the settings that change results (not output paths)."""
        d = self.to_dict()
        for k in ("output_dir", "run_name", "workers", "report", "judge", "max_failure_rate", *_PLACEMENT):
            d.pop(k, None)
        unused = {
            "ensemble": dataclasses.asdict(EnsembleConfig()),
            "verify": dataclasses.asdict(VerifyConfig()),
            "train": dataclasses.asdict(TrainConfig()),
            "sampler": dataclasses.asdict(SamplerConfig()),
            "video": dataclasses.asdict(VideoConfig()),
            "vlm_adapter": "",
            "classic_params": "fitted",
            "given_programs": "",
        }
        for k, default in unused.items():
            if d.get(k) == default:  # settings left at their defaults keep older runs' hashes
                d.pop(k)
        d["executor"].pop("isolation", None)  # where programs run does not change their results
        if d["executor"].get("score_ahead") == ExecutorConfig.score_ahead:  # older runs' hashes stay
            d["executor"].pop("score_ahead")
        hashed_perception(d)  # marking, depth, segmenter, depth_model: only when changed
        calls = hashed_section(d.pop("calls"))  # only what changes results, and only when changed
        if calls:
            d["calls"] = calls
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Convert a JSON or command-line value to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            if arg is type(None):
                if value is None or value in ("None", "null"):
                    return None
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"bad value for {key}: {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' expects an object, got {value!r}")
        return _build(tp, value, prefix=key + ".")
    if origin is dict:
        if isinstance(value, str):  # --key '{"a": "b"}' or --key a=b,c=d
            try:
                value = (
                    json.loads(value)
                    if value.strip().startswith("{")
                    else dict(item.split("=", 1) for item in value.replace(" ", "").split(",") if item)
                )
            except (json.JSONDecodeError, ValueError):
                raise ConfigError(f"config key '{key}' expects a mapping like a=b,c=d, got {value!r}") from None
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' expects a mapping, got {value!r}")
        k_tp, v_tp = typing.get_args(tp) or (Any, Any)
        return {_convert(k, k_tp, key): _convert(v, v_tp, f"{key}.{k}") for k, v in value.items()}
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' expects a list, got {value!r}")
        (arg,) = typing.get_args(tp)[:1] or (Any,)
        return [_convert(v, arg, key) if arg is not Any else v for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"config key '{key}' expects true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"config key '{key}' expects an integer, got {value!r}")
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key '{key}' expects an integer, got {value!r}") from None
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key '{key}' expects a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"config key '{key}' expects a string, got {value!r}")
        return str(value)
    if tp is Any:
        return value
    raise ConfigError(f"config key '{key}' has unsupported type {tp}")


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``, recursing into nested dataclasses."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        full = prefix + key
        if key not in fields:
            known = [prefix + k for k in fields]
            raise ConfigError(f"unknown config key '{full}'{did_you_mean(full, known)}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if isinstance(value, tp):
                kwargs[key] = value
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{full}' expects an object, got {value!r}")
            kwargs[key] = _build(tp, value, prefix=full + ".")
        else:
            kwargs[key] = _convert(value, tp, full)
    try:
        return cls(**kwargs)
    except ValueError as e:
        raise ConfigError(f"invalid config: {e}") from None


def _nest(overrides: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        parts = key.split(".")
        d = nested
        for p in parts[:-1]:
            d = d.setdefault(p, {})
            if not isinstance(d, dict):
                raise ConfigError(f"config key '{key}' conflicts with another override")
        d[parts[-1]] = value
    return nested


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def load_config(path: str | os.PathLike | None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a JSON config (or none: defaults) and apply ``overrides`` (dotted keys allowed)."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p} (pass an existing JSON file to --config)")
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(
                f"config file {p} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
            ) from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p} must hold a JSON object, got {type(data).__name__}")
        data.pop("_comment", None)
    if overrides:
        data = _merge(data, _nest(overrides))
    return _build(RunConfig, data)


def replace_config(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """A copy of ``config`` with ``overrides`` (dotted keys allowed) applied and validated like a config file."""
    return _build(RunConfig, _merge(config.to_dict(), _nest(overrides)))


def parse_overrides(argv: list[str]) -> dict[str, Any]:
    """``["--a", "1", "--b.c", "x", "--flag"]`` -> ``{"a": "1", "b.c": "x", "flag": "true"}``.

    Values stay strings; :func:`load_config` converts them to each field's type.
    ``--key=value`` works too; a bare ``--flag`` means true.
    """
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("--") or len(tok) == 2:
            raise ConfigError(f"unexpected argument '{tok}': overrides look like --key value")
        key = tok[2:]
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            value = argv[i + 1]
            i += 2
        else:
            value = "true"
            i += 1
        out[key.replace("-", "_") if key.replace("-", "_").replace(".", "_").isidentifier() else key] = value
    return out
