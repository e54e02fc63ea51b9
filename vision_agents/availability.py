"""Can a transformers model be had? A check of a few seconds, before anything heavy loads.

:func:`check_weights_available` is the ``check_available()`` of the transformers backends
(run by the runner's preflight before any model loads, see :mod:`runners.preflight`):

- a local directory must hold a ``config.json``;
- a hub id found in the local Hugging Face cache is fine (no network is touched);
- otherwise, with ``HF_HUB_OFFLINE=1`` it cannot be had: fail at once;
- otherwise one metadata request to the hub (a short timeout, no retries) tells a missing
  or gated repository, and an unreachable hub, apart from a model that will download.

Every failure is a :class:`~neptune_core.errors.ModelUnavailableError` with one line naming
the model, the config setting and the fixes (a local path, ``HF_HUB_OFFLINE``, ``hf download``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from neptune_core.errors import ModelUnavailableError

HUB_TIMEOUT_S = 5.0
_TRUE = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """Whether downloads are switched off (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE, read now)."""
    if any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def check_weights_available(model_id: str, setting: str) -> None:
    """Raise ModelUnavailableError (one line) unless ``model_id`` can be loaded or downloaded."""
    local = Path(os.path.expanduser(model_id))
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelUnavailableError(
                f"{setting} '{model_id}' is a directory without config.json: pass a directory saved with "
                "save_pretrained, or a hub id"
            )
        return
    from huggingface_hub import constants, try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(model_id, "config.json")
    except ValueError:  # not a valid repo id
        raise ModelUnavailableError(
            f"{setting} '{model_id}' is neither a local model directory nor a hub id (org/name)"
        ) from None
    if isinstance(cached, str):
        return
    fix = (
        f"download it once with network (`hf download {model_id}`, same HF_HOME), or pass a local model directory "
        f"as {setting}"
    )
    if hub_offline():
        raise ModelUnavailableError(
            f"cannot load {setting} '{model_id}': it is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) "
            f"and HF_HUB_OFFLINE=1 forbids downloading; {fix}"
        )
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi().model_info(model_id, timeout=HUB_TIMEOUT_S)
    except GatedRepoError:
        raise ModelUnavailableError(
            f"{setting} '{model_id}' is a gated repository: accept its terms on the hub and set HF_TOKEN; or {fix}"
        ) from None
    except RepositoryNotFoundError:
        raise ModelUnavailableError(
            f"{setting} '{model_id}' does not exist on the hub (or is private: set HF_TOKEN); check the name, or {fix}"
        ) from None
    except HfHubHTTPError as e:
        raise ModelUnavailableError(
            f"cannot load {setting} '{model_id}': the hub answered {' '.join(str(e).split())[:160]}; {fix}"
        ) from None
    except Exception as e:  # connection refused, DNS, timeout (httpx / requests / OSError)
        raise ModelUnavailableError(
            f"cannot load {setting} '{model_id}': it is not in the local Hugging Face cache and the hub "
            f"({constants.ENDPOINT}) is unreachable ({type(e).__name__}); {fix}, or set HF_HUB_OFFLINE=1 to use "
            "the cache only"
        ) from None


class PretrainedWeights:
    """Loading shared by the transformers backends (VLM, detectors, segmenters, depth).

    A subclass sets ``weights_setting`` (the config setting that names the model, for messages),
    has ``model_id``, ``model`` and ``processor`` attributes, and implements :meth:`_load`
    (fill in whichever of ``model`` / ``processor`` is None). Put this class before the backend's
    base class, so its :meth:`preflight` is the one used.
    """

    weights_setting: str = "model"
    model_id: str
    model: Any
    processor: Any
    _load_error: Exception | None = None  # a failed load is not retried per sample

    def check_available(self) -> None:
        """Preflight, first part: the weights are local or downloadable (seconds, nothing loads)."""
        if self.model is None or self.processor is None:
            check_weights_available(self.model_id, self.weights_setting)

    def preflight(self) -> None:
        """Preflight, second part: load the weights now, before the first sample."""
        self.load()

    def load(self) -> None:
        """Load processor and weights if not loaded yet (idempotent; a failure is raised again, not retried).

        The availability check comes first, so weights that cannot be had fail in seconds with one
        line (not after the hub client's minutes of retries), also when called outside a run."""
        if self._load_error is not None:
            raise self._load_error
        try:
            self.check_available()
            self._load()
        except Exception as e:
            self._load_error = e
            raise

    def _load(self) -> None:
        raise NotImplementedError
