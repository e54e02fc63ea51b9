"""Box marking, score item layout and folding, answer normalisation (no model)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from vision_agents.marking import OBJECT_COLOR, SUBJECT_COLOR, line_width, mark_boxes
from vision_agents.prompting import class_question, fold, normalize_answer, score_items, shape_questions


def test_marking_draws_on_a_copy_with_scaled_width() -> None:
    image = Image.new("RGB", (200, 100), (0, 0, 0))
    out = mark_boxes(image, [10, 10, 50, 50], [100, 20, 150, 80])
    assert image.getpixel((10, 30)) == (0, 0, 0)  # original untouched
    assert out.getpixel((10, 30)) == SUBJECT_COLOR and out.getpixel((100, 50)) == OBJECT_COLOR
    assert out.getpixel((30, 30)) == (0, 0, 0)  # outline only
    assert line_width(Image.new("RGB", (4000, 3000))) == 24 and line_width(image) == 2
    with pytest.raises(ValueError, match="xyxy"):
        mark_boxes(image, [50, 50, 10, 10])


def test_items_and_fold_place_each_pair() -> None:
    image = Image.new("RGB", (64, 64))
    boxes = [[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 60, 60]]
    items = score_items(image, boxes, ["q0", "q1"], 2)
    assert len(items) == 2 * 6 and [q for _, q in items] == ["q0"] * 6 + ["q1"] * 6
    # give each item a code q*100 + i*10 + j and check that fold puts it at [q, i, j]
    pairs = [(i, j) for i in range(3) for j in range(3) if i != j]
    codes = torch.tensor([q * 100 + i * 10 + j for q in range(2) for i, j in pairs], dtype=torch.float)
    m = fold(codes, 2, 3, 2)
    for q in range(2):
        for i in range(3):
            for j in range(3):
                assert m[q, i, j] == (0 if i == j else q * 100 + i * 10 + j)
    # item (q, i, j) marks box i in red and box j in green
    img01 = items[0][0]
    assert img01.getpixel((0, 5)) == SUBJECT_COLOR and img01.getpixel((20, 25)) == OBJECT_COLOR
    assert fold(torch.arange(6.0), 2, 3, 1).tolist() == [[0, 1, 2], [3, 4, 5]]
    assert fold(torch.zeros(0), 2, 1, 2).shape == (2, 1, 1)
    with pytest.raises(ValueError, match="arity"):
        score_items(image, boxes, ["q"], 3)


def test_class_questions_and_normalisation() -> None:
    assert shape_questions(["person"], "class") == [class_question("person")]
    assert "person" in class_question("person ?")
    with pytest.raises(ValueError, match="score type"):
        shape_questions(["x"], "klass")
    assert normalize_answer("  A Red Cube.\nmore") == "red cube"
    assert normalize_answer("Yes!") == "yes" and normalize_answer("") == ""
