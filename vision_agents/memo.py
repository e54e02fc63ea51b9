"""Identity of images, and the bounded per-image stores behind the memo and the detection cache.

- :func:`image_fingerprint`: a hash of an image's pixels (size, mode and bytes); the same
  picture gives the same fingerprint in every run and process. Cached per image object.
- :func:`sample_image_key`: which image a sample is about without loading it: its
  ``image_path`` if it has one, else the fingerprint of its in-memory image. Used to group
  a run's questions by image, and by noisy offline members (flip noise, box jitter), whose
  errors are a function of (image, question, box) like a real model's.
- :class:`ImageLRU`: one store per image, the ``capacity`` most recently used images kept.
"""

from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from PIL import Image

from neptune_core.types import Sample

T = TypeVar("T")

# id(image) -> (weak reference, fingerprint). PIL images define __eq__ and so cannot be dictionary
# keys themselves; the weak reference both checks that the id still names the same object and drops
# the entry when the image is collected.
_FINGERPRINTS: dict[int, tuple[weakref.ref, str]] = {}


def image_fingerprint(image: Image.Image) -> str:
    """A stable hash of ``image``'s pixels (cached for the lifetime of the image object; images are
    not modified in place once loaded)."""
    hit = _FINGERPRINTS.get(id(image))
    if hit is not None and hit[0]() is image:
        return hit[1]
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{image.mode}:{image.size}".encode())
    h.update(image.tobytes())
    key = "pixels:" + h.hexdigest()
    ident = id(image)
    try:
        ref = weakref.ref(image, lambda _, ident=ident: _FINGERPRINTS.pop(ident, None))
    except TypeError:  # an image type that cannot be weakly referenced: not cached
        return key
    _FINGERPRINTS[ident] = (ref, key)
    return key


def sample_image_key(sample: Sample) -> str:
    """The image ``sample`` is about: ``path:<image_path>``, or the fingerprint of its in-memory image."""
    if sample.image is not None:
        return image_fingerprint(sample.image)
    if sample.image_path is not None:
        return f"path:{sample.image_path}"
    return f"sample:{sample.id}"  # no image at all: a key of its own (loading it will fail later)


class ImageLRU(Generic[T]):
    """A store per image key; at most ``capacity`` images are kept, the least recently used dropped first.

    ``capacity`` 0 keeps only the current image (what a per-sample memo did, bounded to one).
    """

    def __init__(self, capacity: int, factory: Callable[[], T]) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.capacity = max(1, capacity)
        self.factory = factory
        self._stores: OrderedDict[str, T] = OrderedDict()

    def get(self, key: str) -> T:
        """The store of ``key`` (created if new), marked most recently used."""
        store = self._stores.get(key)
        if store is None:
            store = self._stores[key] = self.factory()
            while len(self._stores) > self.capacity:
                self._stores.popitem(last=False)
        else:
            self._stores.move_to_end(key)
        return store

    def clear(self) -> None:
        self._stores.clear()

    def __len__(self) -> int:
        return len(self._stores)

    def __contains__(self, key: object) -> bool:
        return key in self._stores
