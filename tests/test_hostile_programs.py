"""Hostile programs: each must end with ``outcome.error`` set and a clear message, and the
host must stay unharmed (no exception out of run, builtins intact, limits stop quickly).

These check the interpreter's own guards, in both isolation modes (one shared executor per mode
and config, as a run has). tests/test_sandbox_run_loop.py sends hostile programs through the
real run loop and the sandbox process."""

from __future__ import annotations

import builtins
import os
import time

import pytest
import torch
from PIL import Image

from neptune_core.config import ExecutorConfig
from neptune_core.executor import Executor
from probabilistic_tensor import Semantics
from vision_agents.base import VisionAgent


class FixedAgent(VisionAgent):
    """Returns fixed probabilities (0.8 everywhere); optionally sleeps inside score()."""

    name = "fixed"

    def __init__(self, sleep_s: float = 0.0) -> None:
        self.sleep_s = sleep_s

    def score(self, image, boxes, questions, arity):
        if self.sleep_s:
            time.sleep(self.sleep_s)
        return torch.full((len(questions),) + (len(boxes),) * arity, 0.8)

    def answer(self, image, box, question):
        return "red"


_EXECUTORS: dict[tuple, Executor] = {}


@pytest.fixture(scope="module", autouse=True)
def _close_executors():
    yield
    for executor in _EXECUTORS.values():
        executor.close()
    _EXECUTORS.clear()


@pytest.fixture(params=["process", "in_process"])
def executor_for(request):
    """``executor_for(config)``: the shared, started executor of this isolation mode for ``config``."""

    def get(config: ExecutorConfig) -> Executor:
        key = (request.param, repr(config))
        if key not in _EXECUTORS:
            _EXECUTORS[key] = Executor(config, Semantics(), isolation=request.param)
            _EXECUTORS[key].start()
        return _EXECUTORS[key]

    return get


IMAGE = Image.new("RGB", (8, 8))
BOXES = [[0, 0, 4, 4], [4, 4, 8, 8], [0, 4, 4, 8]]


def wrap(body: str) -> str:
    lines = "\n".join("    " + line for line in body.strip("\n").splitlines())
    return f"def execute(score, query, n):\n{lines}\n"


# (id, source, error type, a fragment the message must contain)
HOSTILE: list[tuple[str, str, str, str]] = [
    ("import", wrap("import os\nreturn os.getcwd()"), "ProgramCheckError", "import is not allowed"),
    ("from_import", "from os import system\n" + wrap("return system('true')"), "ProgramCheckError", "import"),
    ("dunder_import", wrap("return __import__('os').system('true')"), "ProgramCheckError", "__import__"),
    ("subclasses_walk", wrap("return ().__class__.__bases__[0].__subclasses__()"), "ProgramCheckError", "__class__"),
    ("getattr", wrap("return getattr(score, '__globals__')"), "ProgramCheckError", "'getattr' is not available"),
    ("setattr", wrap("setattr(score, 'x', 1)\nreturn 1"), "ProgramCheckError", "'setattr' is not available"),
    ("eval", wrap("return eval('1+1')"), "ProgramCheckError", "'eval' is not available"),
    ("exec", wrap("exec('x=1')\nreturn 1"), "ProgramCheckError", "'exec' is not available"),
    ("open", wrap("return open('/etc/passwd').read()"), "ProgramCheckError", "'open' is not available"),
    ("compile", wrap("return compile('1', 'f', 'eval')"), "ProgramCheckError", "'compile' is not available"),
    ("globals", wrap("return globals()"), "ProgramCheckError", "'globals' is not available"),
    ("locals_vars", wrap("return [locals(), vars()]"), "ProgramCheckError", "'locals' is not available"),
    ("breakpoint_help", wrap("breakpoint()\nhelp(score)\nreturn 1"), "ProgramCheckError", "'breakpoint'"),
    ("score_globals", wrap("return score.__globals__"), "ProgramCheckError", "'__globals__' is not allowed"),
    ("query_closure", wrap("return query.__closure__"), "ProgramCheckError", "'__closure__' is not allowed"),
    ("score_agent", wrap("return score.agent"), "ProgramCheckError", "'.agent' is not allowed"),
    ("score_func", wrap("return score.func"), "ProgramCheckError", "'.func' is not allowed"),
    # allowed attribute names on values that have no attributes: caught at run time
    ("score_count_runtime", wrap("return score.count('x')"), "SandboxViolation", "attribute access '.count'"),
    ("query_index_runtime", wrap("return query.index('x')"), "SandboxViolation", "not allowed"),
    ("class_method_runtime", wrap("return str.join(',', ['a'])"), "SandboxViolation", "attribute access '.join'"),
    ("method_of_method", wrap("f = 'a'.split\nreturn f.count"), "SandboxViolation", "not allowed"),
    ("fstring_attr", wrap("return f'{score.__globals__}'"), "ProgramCheckError", "'__globals__'"),
    ("fstring_huge_width", wrap("return f'{1:>1000000000}'"), "SizeLimitError", "format width"),
    ("lambda_default", wrap("f = lambda g=score: g.__code__\nreturn f()"), "ProgramCheckError", "'__code__'"),
    ("str_format_attr", wrap("return '{0.__class__}'.format(n)"), "ProgramCheckError", "'.format' is not allowed"),
    ("percent_format", wrap("return '%1000000000d' % 1"), "SandboxViolation", "%-formatting"),
    ("while_true", wrap("while True:\n    pass"), "OperationLimitError", "operation budget"),
    ("deep_recursion", wrap("def f(k):\n    return f(k + 1)\nreturn f(0)"), "CallDepthError", "nested deeper"),
    ("list_repeat", wrap("return [0] * 10**10"), "SizeLimitError", "sequence repetition"),
    ("str_repeat", wrap("return 'a' * 10**9"), "SizeLimitError", "sequence repetition"),
    ("aliased_repeat", wrap("x = [0] * 1000\nreturn [x] * 100000"), "SizeLimitError", "sequence repetition"),
    ("huge_pow", wrap("return 10**10**10"), "SizeLimitError", "a power"),
    ("square_loop", wrap("x = 3\nfor i in range(100):\n    x = x * x\nreturn x"), "SizeLimitError", "a product"),
    ("huge_range", wrap("return list(range(10**12))"), "SizeLimitError", "range"),
    ("huge_range_overflow", wrap("return range(10**30)"), "SizeLimitError", "range"),
    (
        "nested_comprehension",
        wrap("return [[i * j for i in range(1000)] for j in range(1000)]"),
        "OperationLimitError",
        "operation budget",
    ),  # fmt: skip
    (
        "doubling_concat",
        wrap("s = 'ab'\nfor i in range(64):\n    s = s + s\nreturn s"),
        "SizeLimitError",
        "concatenation",
    ),  # fmt: skip
    ("doubling_extend", wrap("a = [1]\nfor i in range(64):\n    a.extend(a)\nreturn a"), "SizeLimitError", "extend"),
    ("replace_bomb", wrap("s = 'a' * 1000\nreturn s.replace('a', s)"), "SizeLimitError", "replaced string"),
    ("join_bomb", wrap("s = 'a' * 50000\nreturn s.join([s, s, s])"), "SizeLimitError", "joined string"),
    ("sum_lists", wrap("return sum([[0] * 1000] * 50, [])"), "TypeError", "sum() adds numbers"),
    ("write_builtin", wrap("len = lambda x: 0\nreturn len([1])"), "ProgramCheckError", "cannot assign to the built-in"),
    ("write_builtins_dict", wrap("__builtins__['len'] = 1\nreturn 1"), "ProgramCheckError", "'__builtins__'"),
    ("global", "x = 1\n" + wrap("global x\nx = 2\nreturn x"), "ProgramCheckError", "global is not allowed"),
    ("nonlocal", wrap("y = 1\ndef f():\n    nonlocal y\n    y = 2\nf()\nreturn y"), "ProgramCheckError", "nonlocal"),
    ("class_def", wrap("class A:\n    pass\nreturn A()"), "ProgramCheckError", "class definitions"),
    ("yield", wrap("yield 1"), "ProgramCheckError", "yield"),
    ("async", "async def execute(score, query, n):\n    return 1\n", "ProgramCheckError", "async"),
    ("with_statement", wrap("with score('a') as s:\n    return s"), "ProgramCheckError", "with-statements"),
    (
        "swallow_time_limit",
        wrap("try:\n    while True:\n        pass\nexcept Exception:\n    return 'caught'"),
        "OperationLimitError",
        "operation budget",
    ),  # fmt: skip
    (
        "swallow_bare_except",
        wrap("try:\n    return [0] * 10**10\nexcept:\n    return 'caught'"),
        "SizeLimitError",
        "sequence repetition",
    ),  # fmt: skip
    (
        "finally_return",
        wrap("def f(k):\n    try:\n        return f(k + 1)\n    finally:\n        return 0\nreturn f(0)"),
        "CallDepthError",
        "nested deeper",
    ),  # fmt: skip
    ("del", wrap("x = 1\ndel x\nreturn 1"), "ProgramCheckError", "del is not allowed"),
    ("starred_call", wrap("return max(*range(10**12))"), "ProgramCheckError", "starred"),
    ("starred_assign", wrap("a, *b = [1, 2, 3]\nreturn b"), "ProgramCheckError", "starred"),
    ("kwargs_unpack", wrap("return dict(**{'a': 1})"), "ProgramCheckError", "keyword unpacking"),
    ("walrus", wrap("return (x := 1)"), "ProgramCheckError", ":="),
    ("decorator", "def deco(f):\n    return f\n@deco\n" + wrap("return 1"), "ProgramCheckError", "decorators"),
    ("type_builtin", wrap("return type(n).__mro__"), "ProgramCheckError", "'type' is not available"),
    ("no_execute", "def run(score, query, n):\n    return 1\n", "ProgramCheckError", "must define"),
    ("bad_signature", "def execute(a, b):\n    return 1\n", "ProgramCheckError", "exactly (score, query, n)"),
    ("syntax_error", "def execute(score, query, n):\n    return (\n", "ProgramCheckError", "syntax error"),
    (
        "deep_nesting",
        wrap("return " + "(" * 45 + "1" + ")" * 45 + " + " + " + ".join(["1"] * 80)),
        "ProgramCheckError",
        "nested more than",
    ),  # fmt: skip
    ("bytes_constant", wrap("return b'abc' * 10"), "ProgramCheckError", "constants of type bytes"),
    ("str_of_aliased", wrap("x = [0] * 90000\ny = [x, x, x]\nreturn str(y)"), "SizeLimitError", "str()"),
    ("subscript_type", wrap("return list[int]"), "SandboxViolation", "subscripting a type"),
    (
        "tensor_blowup",
        wrap(
            "s = score('a')\nt = s('a') & s('b') & s('c') & s('d') & s('e') & s('f') & s('g')\n"
            "t = t & s('h') & s('i') & s('j') & s('k') & s('l')\nreturn t"
        ),
        "SizeLimitError",
        "a tensor over variables",
    ),  # fmt: skip
    ("raise_non_exception", wrap("raise n"), "TypeError", "raise needs an exception"),
]


@pytest.mark.parametrize(("source", "error_type", "fragment"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_program_is_stopped(source: str, error_type: str, fragment: str, executor_for) -> None:
    len_before, cwd_before = builtins.len, os.getcwd()
    boxes = BOXES * 4 if "tensor_blowup" in source else BOXES  # 12 boxes: 12**12 elements if unguarded
    executor = executor_for(ExecutorConfig(time_limit_s=1.0, max_operations=100_000))
    t0 = time.perf_counter()
    outcome = executor.run(source, FixedAgent(), IMAGE, boxes)
    elapsed = time.perf_counter() - t0
    assert outcome.error is not None, f"program ran: {outcome.value!r}"
    assert outcome.value is None
    assert outcome.error.type == error_type, outcome.error
    assert fragment in outcome.error.message, outcome.error.message
    assert elapsed < 3.0
    assert builtins.len is len_before and os.getcwd() == cwd_before


def test_there_are_at_least_25_hostile_programs() -> None:
    assert len(HOSTILE) >= 25 and len({h[0] for h in HOSTILE}) == len(HOSTILE)


def test_check_error_lists_every_problem_with_line_numbers(executor_for) -> None:
    source = "import os\n" + wrap("x = eval('1')\nreturn x.__class__")
    outcome = executor_for(ExecutorConfig()).run(source, FixedAgent(), IMAGE, BOXES)
    lines = outcome.error.message.splitlines()
    assert outcome.error.type == "ProgramCheckError"
    assert lines[0].startswith("line 1:") and "import" in lines[0]
    assert any(line.startswith("line 3:") and "'eval'" in line for line in lines)
    assert any(line.startswith("line 4:") and "__class__" in line for line in lines)


def test_infinite_loop_stops_within_two_seconds_by_time_limit(executor_for) -> None:
    executor = executor_for(ExecutorConfig(time_limit_s=1.0, max_operations=10**12))
    t0 = time.perf_counter()
    outcome = executor.run(wrap("x = 0\nwhile True:\n    x = x + 1"), FixedAgent(), IMAGE, BOXES)
    elapsed = time.perf_counter() - t0
    assert outcome.error.type == "TimeLimitError", outcome.error
    assert 1.0 <= elapsed < 2.0


def test_program_cannot_catch_time_limit(executor_for) -> None:
    source = wrap(
        "k = 0\nwhile k < 3:\n    try:\n        while True:\n            pass\n"
        "    except Exception:\n        k = k + 1\nreturn 'swallowed'"
    )
    outcome = executor_for(ExecutorConfig(time_limit_s=0.3, max_operations=10**12)).run(
        source, FixedAgent(), IMAGE, BOXES
    )
    assert outcome.error.type == "TimeLimitError"


def test_time_inside_score_does_not_count(executor_for) -> None:
    source = wrap("t = score('a', 0)\nfor i in range(4):\n    t = t & score('q' + str(i), 0)\nreturn t")
    outcome = executor_for(ExecutorConfig(time_limit_s=0.2)).run(source, FixedAgent(sleep_s=0.1), IMAGE, BOXES)
    assert outcome.error is None, outcome.error
    assert outcome.seconds > 0.5 and outcome.primitive_seconds > 0.5
    assert len(outcome.trace) == 5


def test_limit_error_names_the_line(executor_for) -> None:
    outcome = executor_for(ExecutorConfig()).run(wrap("x = 1\nreturn [x] * 10**9"), FixedAgent(), IMAGE, BOXES)
    assert outcome.error.message.startswith("line 3:")


HOSTILE_EXTRA = [
    ("tensor_data", wrap("return score('a').data.numpy()"), "ProgramCheckError", "'.data' is not allowed"),
    (
        "retained_copies",
        wrap("x = list(range(90000))\nreturn [sorted(x) for i in range(100)]"),
        "SizeLimitError",
        "in total",
    ),  # fmt: skip
]
HOSTILE.extend(HOSTILE_EXTRA)


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("().__class__.__bases__[0].__subclasses__()", "names starting with '_'"),
        ("getattr(1, 'real')", "name 'getattr' is not defined"),
        ("[0] * 10**10", "sequence repetition"),
        ("len.__self__", "names starting with '_'"),
        ("(lambda: 1).count", "attribute access '.count'"),
        ("list[int]", "subscripting a type"),
    ],
)
def test_interpreter_guards_even_without_the_static_check(source: str, fragment: str) -> None:
    """Defence in depth: an unchecked tree still cannot reach the host."""
    import ast

    from neptune_core.executor.guards import Budget
    from neptune_core.executor.interpreter import Interpreter
    from neptune_core.executor.sandbox import make_builtins

    budget = Budget(ExecutorConfig())
    interp = Interpreter(budget, make_builtins(budget, []))
    with pytest.raises(Exception, match=fragment.replace("[", r"\[").replace("(", r"\(")):
        interp.run_module(ast.parse(f"x = {source}"))
