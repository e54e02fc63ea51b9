"""The LEFT first-order-logic translator, the RLE box decoding of CLEVR-mini scenes, and
the CLEVR-Transfer runner scripts launched like the original release."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from code_generator.left_translator import LeftTranslationError, translate_left
from local_datasets.clevr_transfer import _rle_string_counts, object_box, rle_decode
from neptune_core.clevr_vocab import relation_question, unary_question
from neptune_core.executor import check_source
from tests.fixtures.task_layouts import build_clevr_transfer, encode_rle

REPO = Path(__file__).resolve().parent.parent


def test_point_with_nested_iota_uses_canonical_questions_and_contract() -> None:
    src = translate_left(
        "point(Object, lambda x: small(x) and cylinder(x) and left(x, iota(Object, lambda y: sphere(y))))"
    )
    check_source(src)
    assert f'c_small = score("{unary_question("small")}", 1)' in src
    assert f'r_left = score("{relation_question("left")}", 2)' in src
    assert 'o1 = c_sphere("y").iota("y")' in src
    assert src.rstrip().endswith('return (c_small("x") & c_cylinder("x") & r_left("x", "y").contract(o1)).iota("x")')


def test_each_concept_is_scored_once_and_quantifiers_nest() -> None:
    src = translate_left(
        "exists(Object, lambda x1: exists(Object, lambda x2: red(x1) and red(x2) and behind(x1, x2) and behind(x1, x2)))"
    )
    check_source(src)
    assert src.count("score(") == 2
    assert '.exists("x2").exists("x1")' in src


def test_reused_lambda_names_get_fresh_variables() -> None:
    src = translate_left("exists(Object, lambda x: cube(x) and left(x, iota(Object, lambda x: sphere(x))))")
    check_source(src)
    assert 'c_sphere("x_2").iota("x_2")' in src and 'r_left("x", "x_2")' in src


def test_not_or_count_and_comparison() -> None:
    src = translate_left(
        "greater_than(count(Object, lambda x: cube(x) or not red(x)), count(Object, lambda y: same_color(y, "
        "iota(Object, lambda z: sphere(z)))))"
    )
    check_source(src)
    assert '(c_cube("x") | (~c_red("x"))).count("x")' in src and " > " in src


@pytest.mark.parametrize(
    ("program", "message"),
    [
        ("point(Object, lambda x: shiny_thing(x))", "unknown LEFT function 'shiny_thing'"),
        ("exists(Object, lambda x: red(y))", "unbound name 'y'"),
        ("exists(Object, lambda x: red(x)", "does not parse"),
        ("exists(Color, lambda x: red(x))", "only Object is supported"),
        ("left(iota(Object, lambda x: red(x)), iota(Object, lambda y: cube(y))) and 1", "unsupported construct"),
        ("exists(Object, lambda x: cube(y))", "unbound"),
        ("exists(Object, lambda x: exists(Object, lambda y: cube(y)))", "does not use its variable 'x'"),
    ],
)
def test_bad_programs_raise_clear_errors(program: str, message: str) -> None:
    with pytest.raises(LeftTranslationError, match=message):
        translate_left(program)


def test_rle_decoding_hand_computed() -> None:
    assert _rle_string_counts("234") == [2, 3, 4]
    assert _rle_string_counts("2342") == [2, 3, 4, 5]  # 4th count is a delta from the 2nd
    assert _rle_string_counts("O") == [-1]  # a negative delta
    mask = rle_decode({"size": [3, 3], "counts": [2, 3, 4]})  # column-major: (y2,x0), (y0,x1), (y1,x1)
    assert mask.tolist() == [[False, True, False], [False, True, False], [True, False, False]]
    assert object_box({"mask": {"size": [3, 3], "counts": "234"}}) == [0.0, 0.0, 2.0, 3.0]


def test_rle_roundtrip_boxes() -> None:
    import numpy as np

    mask = np.zeros((40, 50), dtype=bool)
    mask[7:19, 11:30] = True
    mask[25, 40] = True
    rle = encode_rle(mask)
    assert (rle_decode(rle) == mask).all()
    assert object_box({"mask": rle}) == [11.0, 7.0, 41.0, 26.0]


def test_runner_script_runs_like_the_release(tmp_path: Path) -> None:
    """python runners/run_clevr_extensions_rpm_puzzle.py --config ... with the oracle and GT programs."""
    build_clevr_transfer(tmp_path / "data")
    cfg = json.loads((REPO / "configs" / "clevr-rpm.json").read_text())
    cfg.update(
        vlm_model_name="scene_oracle", od_model="gt", program_generator="symbolic_left", program_cache_address=""
    )
    path = tmp_path / "rpm.json"
    path.write_text(json.dumps(cfg))
    cmd = [
        sys.executable,
        str(REPO / "runners" / "run_clevr_extensions_rpm_puzzle.py"),
        "--config",
        str(path),
        "--data_root",
        str(tmp_path / "data"),
        "--output_dir",
        str(tmp_path / "exp"),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "accuracy: 100.0% (24/24)" in out.stdout
    (run_dir,) = (tmp_path / "exp").iterdir()
    rows = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and all(r["correct"] for r in rows) and {r["pred"] for r in rows} == {"yes", "no"}
