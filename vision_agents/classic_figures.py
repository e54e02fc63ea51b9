"""Pixel models for what the ``classic`` VisionAgent knows beyond CLEVR, and where CLEVR's models stop.

The CLEVR class models (``classic_params.json``) were fitted on shaded 3D renders on a
CLEVR floor. On any other image they would force every object into CLEVR's words (a
drawn circle is always a "sphere"). This module measures what holds everywhere:

- **paint**: the object's commonest colour (Lab), named against prototypes of twelve basic
  colour terms (:data:`COLOUR_PROTOTYPES`: CLEVR's eight plus black, white, orange, pink);
- **flatness**: the share of the object's inner pixels within delta-E 1 of its paint. A drawn
  figure is flat (about 1); a shaded 3D object is not (CLEVR renders stay below 0.7);
- **figure shape**: circle / square / rectangle / triangle / star from the fill of the box,
  the solidity and the roundness of the convex hull; "other" when nothing fits.

:func:`concept_probability` combines them with the CLEVR models into p(value) for one
object, or None where no model of this agent applies (an unknown concept, reported on
the trace). Its rules are the whole domain logic (:func:`clevr_class` names the cases where
a CLEVR class model alone decides; the agent asks its trainable heads directly there):

- on a CLEVR floor: CLEVR words use the CLEVR models (exactly as before); "square" and
  "circle" read as cube and sphere (people's words for them); other figure words need a flat
  figure; extra colours use the colour namer;
- elsewhere: every colour word uses the colour namer; figure words need a flat figure and
  CLEVR's 3D shape words need a non-flat object; size and material (fitted on CLEVR's camera
  and lighting only) are unknown.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from vision_agents.classic_detector import Segmentation, rgb_to_lab, solidity
from vision_agents.classic_features import object_mask

COLOUR_PROTOTYPES: dict[str, tuple[int, int, int]] = {  # sRGB of each basic colour term
    "black": (20, 20, 20),
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
    "red": (210, 30, 30),
    "orange": (250, 140, 20),
    "yellow": (250, 225, 40),
    "green": (40, 150, 50),
    "blue": (40, 70, 210),
    "purple": (130, 50, 180),
    "pink": (250, 140, 190),
    "brown": (130, 80, 30),
    "cyan": (50, 200, 210),
}
COLOUR_TEMPERATURE = 5.0  # delta-E per nat of the colour namer's softmax
FLAT_AT = 0.85  # flatness where p(flat figure) = 0.5
FLAT_SHARPNESS = 40.0
# figure prototypes over (fill of the box, solidity, roundness of the hull)
FIGURE_PROTOTYPES: dict[str, tuple[float, float, float]] = {
    "circle": (math.pi / 4, 1.0, 1.0),
    "quad": (1.0, 1.0, math.pi / 4),
    "triangle": (0.5, 1.0, 0.65),  # corners come out slightly rounded
    "star": (0.38, 0.55, 0.86),  # a five-pointed star; its hull is a pentagon
}
OTHER = "other"  # the figure shape of an object no prototype fits
FIGURE_OTHER_DISTANCE = 0.15  # an object farther than this from every prototype is "other"
FIGURE_TEMPERATURE = 0.03
SQUARE_ASPECT_TOLERANCE = 0.2  # |log(height / width)| of a square, one standard deviation
_LAB_PROTOS = rgb_to_lab(np.array(list(COLOUR_PROTOTYPES.values()), dtype=np.float64) / 255.0)
_CLEVR_SHAPE_FOR = {"square": "cube", "circle": "sphere"}  # on a CLEVR floor


@dataclass
class FigureFeatures:
    """What this module measures of one object."""

    paint: np.ndarray  # Lab of the commonest colour
    flatness: float  # share of inner pixels within delta-E 1 of the paint
    fill: float  # mask area / box area
    solidity: float  # mask area / convex hull area
    roundness: float  # isoperimetric quotient of the convex hull (hull_roundness)
    aspect: float  # box height / width
    body: np.ndarray  # Lab of the lit body (classic_features), the colour of a shaded object

    @property
    def colour(self) -> np.ndarray:
        """The colour to name: the paint of a flat figure, else the lit body."""
        return self.paint if self.p_flat > 0.5 else self.body

    @property
    def p_flat(self) -> float:
        """Probability that the object is a flat, uniformly painted figure."""
        return 1.0 / (1.0 + math.exp(-FLAT_SHARPNESS * (self.flatness - FLAT_AT)))


def _paint(lab: np.ndarray) -> tuple[np.ndarray, float]:
    """(commonest colour, share of pixels within delta-E 1 of it) of Lab pixels (N, 3)."""
    keys = np.round(lab / 2.0).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    mode = np.median(lab[inverse.reshape(-1) == counts.argmax()], axis=0)
    return mode, float((np.linalg.norm(lab - mode, axis=1) < 1.0).mean())


def hull_roundness(mask: np.ndarray) -> float:
    """Isoperimetric quotient 4 pi A / P^2 of the convex hull of ``mask``: circle 1, square 0.785,
    equilateral triangle 0.605 (robust to the corners the detector's morphology rounds off)."""
    ys, xs = np.nonzero(mask)
    if len(ys) < 10:
        return 0.0
    pts = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)]).astype(np.float64)
    try:
        hull = ConvexHull(pts)
    except QhullError:
        return 0.0
    return float(4 * math.pi * hull.volume / max(hull.area, 1e-6) ** 2)


def measure_figure(seg: Segmentation, box: list[float], body: np.ndarray) -> FigureFeatures:
    """Paint, flatness and silhouette of the object in ``box`` (``body``: its lit-body Lab colour)."""
    mask = object_mask(seg, box)
    x1, y1 = max(0, int(math.floor(box[0]))), max(0, int(math.floor(box[1])))
    pixels = seg.image[y1 : y1 + mask.shape[0], x1 : x1 + mask.shape[1]]
    inner = ndimage.binary_erosion(mask, iterations=2)
    if inner.sum() < 20:
        inner = mask
    lab = rgb_to_lab(pixels[inner]) if inner.any() else np.zeros((1, 3))
    paint, flatness = _paint(lab)
    bh, bw = mask.shape
    return FigureFeatures(
        paint=paint,
        flatness=flatness,
        fill=float(mask.sum()) / max(1, bh * bw),
        solidity=solidity(mask),
        roundness=hull_roundness(mask),
        aspect=bh / max(1, bw),
        body=np.asarray(body, dtype=np.float64),
    )


def colour_probs(lab: np.ndarray) -> dict[str, float]:
    """p(term) over the basic colour terms for one Lab colour (softmax of minus delta-E)."""
    d = np.linalg.norm(_LAB_PROTOS - np.asarray(lab, dtype=np.float64), axis=1)
    s = np.exp(-(d - d.min()) / COLOUR_TEMPERATURE)
    return {name: float(v) for name, v in zip(COLOUR_PROTOTYPES, s / s.sum(), strict=True)}


def figure_probs(ff: FigureFeatures) -> dict[str, float]:
    """p(shape) over circle, square, rectangle (not square), triangle, star and "other" for a flat figure."""
    x = np.array([ff.fill, ff.solidity, ff.roundness])
    names = [*FIGURE_PROTOTYPES, OTHER]
    d = [float(np.linalg.norm(x - np.array(p))) for p in FIGURE_PROTOTYPES.values()] + [FIGURE_OTHER_DISTANCE]
    s = np.exp(-(np.array(d) - min(d)) / FIGURE_TEMPERATURE)
    p = dict(zip(names, (s / s.sum()).tolist(), strict=True))
    square = math.exp(-((math.log(max(ff.aspect, 1e-3)) / SQUARE_ASPECT_TOLERANCE) ** 2))
    quad = p.pop("quad")
    return {**p, "square": quad * square, "rectangle": quad * (1.0 - square)}


FigureSource = Callable[[], FigureFeatures]
"""Measures the object's figure features on first call (they are only needed off a CLEVR floor
or for words beyond CLEVR)."""


def clevr_class(value: str, attribute: str, classes: Collection[str], clevr_floor: bool) -> str | None:
    """The CLEVR class (one of ``classes``, the values of the CLEVR model of ``attribute``) whose
    probability alone is p(the object is ``value``): on a CLEVR floor the value itself, or cube /
    sphere for "square" / "circle"; None where this module's models take part."""
    if not clevr_floor:
        return None
    if value in classes:
        return value
    named = _CLEVR_SHAPE_FOR.get(value) if attribute == "shape" else None
    return named if named in classes else None


def value_distribution(
    attribute: str, clevr: dict[str, float] | None, figure: FigureSource, clevr_floor: bool
) -> dict[str, float] | None:
    """p over the values of ``attribute`` for one object, or None where no model of this agent applies.

    ``clevr`` is the CLEVR class model's p over its values (None when it has none). On a CLEVR
    floor the CLEVR models answer as they always did."""
    if clevr_floor and clevr:
        return clevr
    if attribute == "color":
        return colour_probs(figure().colour)
    if attribute == "shape" and figure().p_flat > 0.5:
        return figure_probs(figure())
    return clevr if clevr and attribute == "shape" else None


def concept_probability(
    value: str, attribute: str, clevr: dict[str, float] | None, figure: FigureSource, clevr_floor: bool
) -> float | None:
    """p(the object is ``value``), or None where this agent has no model for it (see the module docstring).

    ``clevr`` is the CLEVR class model's p over the values of ``attribute`` (None when it has none)."""
    named = clevr_class(value, attribute, clevr or (), clevr_floor)
    if clevr and named is not None:
        return clevr[named]
    if clevr and value in clevr:  # off a CLEVR floor
        if attribute == "shape":  # a 3D shape word: not for a flat figure
            return min(clevr[value], 1.0 - figure().p_flat)
        if attribute != "color":  # size and material: fitted on CLEVR's camera and lighting only
            return None
    if attribute == "color":
        return colour_probs(figure().colour)[value]
    if attribute == "shape":
        ff = figure()
        p = figure_probs(ff)
        return min(p["square"] + p["rectangle"] if value == "rectangle" else p[value], ff.p_flat)
    return None


def same_value_probability(subject: dict[str, float], other: dict[str, float]) -> float:
    """p(two objects have the same value) from their value distributions (no shape fits: never the same)."""
    return sum(p * other.get(v, 0.0) for v, p in subject.items() if v != OTHER)


def answer_name(value: str) -> str:
    """The open answer a value stands for ("unknown" for a figure no shape fits)."""
    return "unknown" if value == OTHER else value


__all__ = [
    "COLOUR_PROTOTYPES",
    "OTHER",
    "FigureFeatures",
    "FigureSource",
    "answer_name",
    "clevr_class",
    "colour_probs",
    "concept_probability",
    "figure_probs",
    "hull_roundness",
    "measure_figure",
    "same_value_probability",
    "value_distribution",
]
