"""Extraction of programs from replies, the pre-execution checks and the certain repairs."""

from __future__ import annotations

import pytest

from code_generator.checks import check_program
from code_generator.extraction import ExtractionError, extract, parse_object_names
from code_generator.repairs import repair

OK = 'def execute(score, query, n):\n    return score("Is this a cube?", 1).count()\n'


def test_extract_fenced_with_objects_and_prose():
    text = 'Sure! Here it is.\nObjects: ["cube", "sphere"]\n```python\n' + OK + "```\nHope this helps."
    got = extract(text)
    assert got.source == OK and got.object_names == ["cube", "sphere"]


def test_extract_unfenced_code_between_prose():
    text = "**Objects**: cube, red ball\nThe program:\n" + OK + "This counts cubes.\n"
    got = extract(text)
    assert got.source == OK and got.object_names == ["cube", "red ball"]
    assert "code without a fence" in got.notes


def test_extract_json_reply_and_last_execute_block():
    got = extract('{"objects": ["dog"], "program": ' + __import__("json").dumps(OK) + "}")
    assert got.source == OK and got.object_names == ["dog"]
    two = "```python\ndef helper():\n    return 1\n```\n```python\n" + OK + "```"
    assert extract(two).source == OK


def test_extract_no_code_and_no_objects():
    with pytest.raises(ExtractionError, match="no code"):
        extract("The answer is 3.")
    with pytest.raises(ExtractionError, match="empty"):
        extract("   ")
    assert extract("```\n" + OK + "```").object_names is None
    assert parse_object_names("['cube', 'none', 'cube']") == ["cube"]


def test_good_program_has_no_problems():
    assert check_program(OK) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def execute(score, query, n)\n    return 1\n", "syntax error at line 1"),
        ("def run(score, query, n):\n    return 1\n", "execute"),
        ("def execute(score, query, n):\n    return cubes.count()\n", "'cubes'"),
        ("def execute(score, query, n):\n    x = y\n    y = 1\n    return x\n", "'y' is used before it is assigned"),
        ('def execute(score, query, n):\n    return score("Is it?", 3)\n', "num_objects must be the literal 0, 1 or 2"),
        (
            'def execute(score, query, n):\n    k = 1\n    return score("Is it?", k)\n',
            "num_objects must be the literal",
        ),
        ('def execute(score, query, n):\n    return query("What color?")\n', "query needs an object index"),
        ('def execute(score, query, n):\n    return query("What color?", "cube")\n', "object_id must be a box index"),
        (
            'def execute(score, query, n):\n    if n > 2:\n        return "yes"\n',
            "does not return a value on every path",
        ),
        ("import os\ndef execute(score, query, n):\n    return 1\n", "import"),
        ("def execute(score, query, n):\n    return open('x')\n", "open"),
        ("def execute(score, query, n):\n    return n.__class__\n", "_"),
    ],
)
def test_problems_are_found(source, expected):
    problems = check_program(source)
    assert problems, source
    assert any(expected in p for p in problems), problems


def test_every_path_returns_variants_pass():
    src = (
        "def execute(score, query, n):\n"
        "    if n == 0:\n        return 'no'\n    elif n == 1:\n        return 'one'\n    else:\n        return 'many'\n"
    )
    assert check_program(src) == []
    loop = (
        "def execute(score, query, n):\n    for i in range(n):\n        pass\n    return query('What is it?', None)\n"
    )
    assert check_program(loop) == []


def test_nested_function_and_comprehension_scopes():
    src = (
        "def execute(score, query, n):\n"
        "    cube = score('Is this a cube?', 1)\n"
        "    def big(i):\n        return cube[i]\n"
        "    return sum([float(big(i)) for i in range(n)])\n"
    )
    assert check_program(src) == []


@pytest.mark.parametrize(
    ("source", "must_contain", "must_not"),
    [
        (
            'def execute(score, query, n):\n    return score("Is there a cube?", 0) == "yes"\n',
            'score("Is there a cube?", 0)',
            "yes",
        ),
        ('def execute(score, query, n):\n    s = score("Is there a cube?", 0)\n    return s == "no"\n', "~s", "no'"),
        ('def execute(score, query, n):\n    return "yes" != score("Cube?", 0).exists()\n', "~score(", "yes"),
        (
            'def execute(score, query, n):\n    a = score("Red?", 1)\n    b = score("Cube?", 1)\n    return (a and not b).exists()\n',
            "a & ~b",
            " and ",
        ),
        ('def execute(score, query, n):\n    return score("Cube?", "1").count()\n', 'score("Cube?", 1)', '"1"'),
        ('def execute(score, query):\n    return score("Cube?", 1).count()\n', "execute(score, query, n)", "query):"),
    ],
)
def test_certain_repairs(source, must_contain, must_not):
    fixed, notes = repair(source)
    assert notes
    assert must_contain in fixed.replace("'", '"') or must_contain in fixed
    assert must_not not in fixed.split(":", 1)[1]
    assert check_program(fixed) == []


def test_repair_leaves_uncertain_code_alone():
    # comparing a query answer (a string) with 'yes' is right; so is a python `and` on counts
    src = 'def execute(score, query, n):\n    return query("Is it red?", 0) == "yes" and n > 1\n'
    assert repair(src) == (src, [])
    broken = "def execute(score, query, n)\n    return 1\n"
    assert repair(broken) == (broken, [])
