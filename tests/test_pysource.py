"""parse_python: parsing from several threads at once (CPython 3.11's AST constructor race)."""

from __future__ import annotations

import ast
import gc
import sys
import threading
from pathlib import Path

import pytest

from neptune_core.pysource import parse_python

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "\n".join(f"x{i} = f(g(h({i}, [a, b, {{'k': (c, d)}}])))" for i in range(50))


def _parse_with_another_parse_inside(parse, other_parse=None, state=None) -> tuple[bool, dict[str, object]]:  # noqa: ANN001
    """Parse SOURCE on this thread; at the first garbage collection during that parse (3.11 collects
    while the AST constructor allocates), another thread parses too (``other_parse``, default
    ``parse``) and this one waits up to 0.5 s for it: the interleaving that made ``ast.parse`` fail
    with a SystemError."""
    results: dict[str, object] = {}
    state = state if state is not None else {}
    state.update(
        parsing=False, fired=False, waited=False
    )  # plain flags: the callback may run inside any lock's methods
    other = threading.Thread(target=lambda: results.__setitem__("other", _outcome(other_parse or parse)))
    me = threading.current_thread()

    def collecting(phase: str, info: dict) -> None:
        inside = sys._getframe(1).f_code is ast.parse.__code__  # collecting inside compile(), called by ast.parse
        if phase == "start" and state["parsing"] and not state["fired"] and inside and threading.current_thread() is me:
            state["fired"] = True
            other.start()
            other.join(0.5)  # with the lock, the other parse waits for this one instead
            state["waited"] = True  # before this parse goes on (and could release a lock)

    threshold = gc.get_threshold()
    gc.set_threshold(1)
    gc.callbacks.append(collecting)
    try:
        state["parsing"] = True
        results["this"] = _outcome(parse)
        state["parsing"] = False
    finally:
        gc.callbacks.remove(collecting)
        gc.set_threshold(*threshold)
    if state["fired"]:
        other.join(10)
    return state["fired"], results


def _outcome(parse) -> object:  # noqa: ANN001
    try:
        return ast.dump(parse(SOURCE))
    except Exception as e:  # the failure is what the test looks at
        return e


def test_a_parse_in_another_thread_midway_does_not_break_either():
    fired, results = _parse_with_another_parse_inside(parse_python)
    if not fired:
        assert sys.version_info >= (3, 12), "Python 3.11 collects garbage inside the AST constructor"
        pytest.skip("this Python does not collect garbage inside the AST constructor: no race to provoke")
    expected = ast.dump(ast.parse(SOURCE))
    assert results == {"this": expected, "other": expected}


def test_an_llm_reply_with_a_python_list_of_objects_parses_beside_the_run_loop():
    """``Objects: ['cube', 'sphere']`` (single quotes) is read with ast.literal_eval in a generation thread."""
    from code_generator.extraction import parse_object_names

    names: list[tuple[list[str], bool]] = []
    state: dict[str, bool] = {}

    def read_objects(source: str) -> ast.AST:
        names.append((parse_object_names("['cube', 'large sphere']"), state["waited"]))
        return parse_python(source)

    fired, results = _parse_with_another_parse_inside(parse_python, read_objects, state)
    if not fired:
        assert sys.version_info >= (3, 12), "Python 3.11 collects garbage inside the AST constructor"
        pytest.skip("this Python does not collect garbage inside the AST constructor: no race to provoke")
    expected = ast.dump(ast.parse(SOURCE))
    assert results == {"this": expected, "other": expected}
    assert names == [(["cube", "large sphere"], True)]  # read after the other parse, not midway through it


def test_eval_mode_and_errors_are_those_of_ast_parse():
    assert ast.dump(parse_python("a + 1", mode="eval")) == ast.dump(ast.parse("a + 1", mode="eval"))
    with pytest.raises(SyntaxError):
        parse_python("def (")


def test_nothing_in_the_package_parses_python_itself():
    """Every parse goes through parse_python: one thread's bare ast.parse (or ast.literal_eval of a
    string, which parses it) can break another's."""
    callers = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in ROOT.rglob("*.py")
        if path.parts[len(ROOT.parts)] not in {"tests", ".venv", "experiments"} and path.name != "pysource.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "ast.parse(" in line or ("literal_eval(" in line and "parse_python(" not in line)
    ]
    assert callers == []
