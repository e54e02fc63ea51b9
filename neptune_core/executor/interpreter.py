"""An AST-walking interpreter for checked programs (no exec/eval of program text).

Every evaluated node costs one operation of the :class:`Budget`; the program-time
deadline is checked every 64 operations; calls of program functions count towards
the call-depth limit; allocations go through the size guards of ``sandbox.py``.
Attribute access, calls and subscripts are checked again at run time, so a tree
that skipped :func:`check_source` still cannot reach the host.

To support a new node type: add ``_eval_<Node>`` (expressions) or ``_exec_<Node>``
(statements) here and whitelist the node in ``checker.py``.
"""

from __future__ import annotations

import ast
import functools
import operator
from collections.abc import Callable, Iterator
from typing import Any

from neptune_core.executor.guards import (
    Budget,
    CallDepthError,
    ProgramMemoryError,
    SandboxAbort,
    SandboxViolation,
    is_out_of_memory,
)
from neptune_core.executor.operators import (
    PRE_CALL,
    binary_op,
    check_format_spec,
    check_pt_size,
    check_stringify,
    guard_elements,
    guard_new_tuple,
)
from neptune_core.executor.sandbox import ALLOCATING_CALLS, EXCEPTION_CLASSES, BoundMethod, get_attribute
from probabilistic_tensor import ProbabilisticTensor

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
    ast.BitAnd: operator.and_, ast.BitOr: operator.or_, ast.BitXor: operator.xor,
}  # fmt: skip
_INPLACE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.iadd, ast.Sub: operator.isub, ast.Mult: operator.imul, ast.Div: operator.itruediv,
    ast.FloorDiv: operator.ifloordiv, ast.Mod: operator.imod, ast.Pow: operator.ipow,
    ast.BitAnd: operator.iand, ast.BitOr: operator.ior, ast.BitXor: operator.ixor,
}  # fmt: skip
_CMPOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}  # fmt: skip
_UNARY: dict[type, Callable[[Any], Any]] = {
    ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert,
}  # fmt: skip
_SUBSCRIPTABLE = (str, list, tuple, dict, range, ProbabilisticTensor)
_CONTAINERS = (list, tuple, set, frozenset, dict)
_MEMBERSHIP = (ast.In, ast.NotIn)
_NOT_CATCHABLE = (SandboxAbort, RecursionError, MemoryError)


class _ControlFlow(BaseException):
    """Return/break/continue; BaseException so that program handlers never see them."""


class _Return(_ControlFlow):
    def __init__(self, value: Any) -> None:
        self.value = value


class _Break(_ControlFlow):
    pass


class _Continue(_ControlFlow):
    pass


class Scope:
    """Variables of one function call (or comprehension), chained to the enclosing scope."""

    __slots__ = ("vars", "parent")

    def __init__(self, parent: Scope | None) -> None:
        self.vars: dict[str, Any] = {}
        self.parent = parent


class ProgramFunction:
    """A function or lambda defined by the program; callable from host builtins too (sorted key=...)."""

    __slots__ = ("interp", "name", "args", "body", "defaults", "kw_defaults", "closure", "is_lambda")

    def __init__(self, interp: Interpreter, name: str, node: ast.FunctionDef | ast.Lambda, closure: Scope) -> None:
        self.interp, self.name, self.closure = interp, name, closure
        self.args = node.args
        self.body = node.body
        self.is_lambda = isinstance(node, ast.Lambda)
        self.defaults = [interp.eval(d, closure) for d in node.args.defaults]
        self.kw_defaults = [None if d is None else interp.eval(d, closure) for d in node.args.kw_defaults]

    def _bind(self, args: tuple, kwargs: dict[str, Any], scope: Scope) -> None:
        positional = [a.arg for a in self.args.posonlyargs + self.args.args]
        if len(args) > len(positional):
            raise TypeError(f"{self.name}() takes {len(positional)} positional arguments but {len(args)} were given")
        values = dict(zip(positional, args, strict=False))
        first_default = len(positional) - len(self.defaults)
        for i, name in enumerate(positional):
            if name in kwargs:
                if name in values:
                    raise TypeError(f"{self.name}() got multiple values for argument '{name}'")
                values[name] = kwargs.pop(name)
            elif name not in values:
                if i < first_default:
                    raise TypeError(f"{self.name}() missing required argument '{name}'")
                values[name] = self.defaults[i - first_default]
        for a, default in zip(self.args.kwonlyargs, self.kw_defaults, strict=True):
            if a.arg in kwargs:
                values[a.arg] = kwargs.pop(a.arg)
            elif default is None:
                raise TypeError(f"{self.name}() missing required keyword argument '{a.arg}'")
            else:
                values[a.arg] = default
        if kwargs:
            raise TypeError(f"{self.name}() got an unexpected keyword argument '{next(iter(kwargs))}'")
        scope.vars.update(values)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        interp = self.interp
        interp.budget.enter_call(self.name)
        try:
            scope = Scope(self.closure)
            self._bind(args, dict(kwargs), scope)
            if self.is_lambda:
                return interp.eval(self.body, scope)
            try:
                interp.exec_body(self.body, scope)
            except _Return as r:
                return r.value
            except _ControlFlow:
                raise SandboxViolation("break/continue outside a loop") from None
            return None
        finally:
            interp.budget.exit_call()

    def __repr__(self) -> str:
        return f"<program function {self.name}>"


@functools.cache
def _handlers(cls: type, prefix: str) -> dict[type, Callable[..., Any]]:
    """AST node type -> the (unbound) method of ``cls`` that handles it."""
    return {getattr(ast, a[len(prefix) :]): getattr(cls, a) for a in dir(cls) if a.startswith(prefix)}


class Interpreter:
    """Runs a parsed module within ``budget``; ``names`` are the predefined names (builtins, API)."""

    def __init__(self, budget: Budget, names: dict[str, Any]) -> None:
        self.budget = budget
        self.names = names
        self.globals = Scope(None)
        self.lineno = 0
        self._callable_ids = {id(v) for v in names.values() if callable(v)}
        self._eval = _handlers(type(self), "_eval_")
        self._exec = _handlers(type(self), "_exec_")

    def allow_callable(self, func: Any) -> None:
        """Let programs call ``func`` (e.g. the primitives passed to execute)."""
        self._callable_ids.add(id(func))

    # ---- entry points -----------------------------------------------------------------
    def run_module(self, tree: ast.Module) -> None:
        try:
            self.exec_body(tree.body, self.globals)
        except _ControlFlow:
            raise SandboxViolation("return/break/continue outside a function or loop") from None

    def call(self, func: Any, *args: Any) -> Any:
        self._check_callable(func)
        return func(*args)

    def release(self) -> None:
        """Forget the program's globals once the run is over. Its top-level functions refer to them
        (and to this interpreter): a reference cycle per run, which only a garbage collection
        pass would free, with everything the run made."""
        self.globals.vars.clear()

    # ---- statements ------------------------------------------------------------------
    def exec_body(self, body: list[ast.stmt], scope: Scope) -> None:
        b = self.budget
        for stmt in body:
            b.operations += 1
            if b.operations > b.max_operations or not b.operations & 63:
                b.check()
            self.lineno = stmt.lineno
            handler = self._exec.get(type(stmt))
            if handler is None:
                raise SandboxViolation(f"statement {type(stmt).__name__} is not allowed")
            handler(self, stmt, scope)

    def _exec_Expr(self, node: ast.Expr, scope: Scope) -> None:
        self.eval(node.value, scope)

    def _exec_Pass(self, node: ast.Pass, scope: Scope) -> None:
        pass

    def _exec_Return(self, node: ast.Return, scope: Scope) -> None:
        raise _Return(None if node.value is None else self.eval(node.value, scope))

    def _exec_Break(self, node: ast.Break, scope: Scope) -> None:
        raise _Break

    def _exec_Continue(self, node: ast.Continue, scope: Scope) -> None:
        raise _Continue

    def _exec_FunctionDef(self, node: ast.FunctionDef, scope: Scope) -> None:
        scope.vars[node.name] = ProgramFunction(self, node.name, node, scope)

    def _exec_Assign(self, node: ast.Assign, scope: Scope) -> None:
        value = self.eval(node.value, scope)
        for target in node.targets:
            self.assign(target, value, scope)

    def _exec_AnnAssign(self, node: ast.AnnAssign, scope: Scope) -> None:
        if node.value is not None:
            self.assign(node.target, self.eval(node.value, scope), scope)

    def _exec_AugAssign(self, node: ast.AugAssign, scope: Scope) -> None:
        target = node.target
        if isinstance(target, ast.Name):
            current = self.lookup(target.id, scope)
            self.assign(
                target, binary_op(self.budget, _INPLACE[type(node.op)], current, self.eval(node.value, scope)), scope
            )
        elif isinstance(target, ast.Subscript):
            obj = self.eval(target.value, scope)
            key = self.eval(target.slice, scope)
            current = self._subscript(obj, key)
            value = binary_op(self.budget, _INPLACE[type(node.op)], current, self.eval(node.value, scope))
            self._store_item(obj, key, value)
        else:
            raise SandboxViolation(f"cannot assign to {type(target).__name__}")

    def _exec_If(self, node: ast.If, scope: Scope) -> None:
        self.exec_body(node.body if self.eval(node.test, scope) else node.orelse, scope)

    def _exec_For(self, node: ast.For, scope: Scope) -> None:
        for item in self.eval(node.iter, scope):
            self.assign(node.target, item, scope)
            try:
                self.exec_body(node.body, scope)
            except _Break:
                return
            except _Continue:
                continue
        self.exec_body(node.orelse, scope)

    def _exec_While(self, node: ast.While, scope: Scope) -> None:
        while self.eval(node.test, scope):
            try:
                self.exec_body(node.body, scope)
            except _Break:
                return
            except _Continue:
                continue
        self.exec_body(node.orelse, scope)

    def _exec_Raise(self, node: ast.Raise, scope: Scope) -> None:
        exc = self.eval(node.exc, scope) if node.exc is not None else None
        if isinstance(exc, type) and exc in EXCEPTION_CLASSES:
            exc = exc()
        if not isinstance(exc, EXCEPTION_CLASSES):
            raise TypeError("raise needs an exception such as ValueError('message')")
        raise exc

    def _exec_Assert(self, node: ast.Assert, scope: Scope) -> None:
        if not self.eval(node.test, scope):
            if node.msg is None:
                raise AssertionError("")
            msg = self.eval(node.msg, scope)
            check_stringify(self.budget, msg, "an assert message")
            raise AssertionError(str(msg))

    def _exec_Try(self, node: ast.Try, scope: Scope) -> None:
        try:
            try:
                self.exec_body(node.body, scope)
            except _NOT_CATCHABLE:
                raise
            except Exception as exc:
                if is_out_of_memory(exc):
                    raise
                for handler in node.handlers:
                    if self._handler_matches(handler, exc, scope):
                        if handler.name:
                            scope.vars[handler.name] = exc
                        self.exec_body(handler.body, scope)
                        break
                else:
                    raise
            else:
                self.exec_body(node.orelse, scope)
        except BaseException as exc:
            if isinstance(exc, _NOT_CATCHABLE) or not isinstance(exc, (Exception, _ControlFlow)):
                raise
            self.exec_body(node.finalbody, scope)
            raise
        self.exec_body(node.finalbody, scope)

    def _handler_matches(self, handler: ast.ExceptHandler, exc: Exception, scope: Scope) -> bool:
        if handler.type is None:
            return True
        kinds = self.eval(handler.type, scope)
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        if not all(k in EXCEPTION_CLASSES for k in kinds):
            raise SandboxViolation("except clauses may only name built-in exception classes such as ValueError")
        return isinstance(exc, kinds)

    # ---- names and assignment --------------------------------------------------------
    def lookup(self, name: str, scope: Scope) -> Any:
        s: Scope | None = scope
        while s is not None:
            if name in s.vars:
                return s.vars[name]
            s = s.parent
        if name in self.names:
            return self.names[name]
        raise NameError(f"name '{name}' is not defined")

    def assign(self, target: ast.expr, value: Any, scope: Scope) -> None:
        if isinstance(target, ast.Name):
            if target.id.startswith("__"):
                raise SandboxViolation(f"name '{target.id}' is not allowed")
            scope.vars[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            items = list(value) if not isinstance(value, (list, tuple)) else value
            if len(items) != len(target.elts):
                raise ValueError(f"cannot unpack {len(items)} values into {len(target.elts)} names")
            for t, v in zip(target.elts, items, strict=True):
                self.assign(t, v, scope)
        elif isinstance(target, ast.Subscript):
            self._store_item(self.eval(target.value, scope), self.eval(target.slice, scope), value)
        else:
            raise SandboxViolation(f"cannot assign to {type(target).__name__}")

    def _store_item(self, obj: Any, key: Any, value: Any) -> None:
        if type(obj) not in (list, dict):
            raise SandboxViolation(f"item assignment is only allowed on lists and dicts, not {type(obj).__name__}")
        if type(obj) is list and isinstance(key, slice):
            raise SandboxViolation("slice assignment is not allowed")
        if type(obj) is dict:
            self.budget.check_size(len(obj) + 1, "the dict", allocate=False)
        obj[key] = value

    # ---- expressions -----------------------------------------------------------------
    def eval(self, node: ast.expr, scope: Scope) -> Any:
        b = self.budget
        b.operations += 1
        if b.operations > b.max_operations or not b.operations & 63:
            b.check()
        handler = self._eval.get(type(node))
        if handler is None:
            raise SandboxViolation(f"expression {type(node).__name__} is not allowed")
        return handler(self, node, scope)

    def _eval_Constant(self, node: ast.Constant, scope: Scope) -> Any:
        return node.value

    def _eval_Name(self, node: ast.Name, scope: Scope) -> Any:
        if node.id.startswith("__"):
            raise SandboxViolation(f"name '{node.id}' is not allowed")
        return self.lookup(node.id, scope)

    def _eval_BinOp(self, node: ast.BinOp, scope: Scope) -> Any:
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise SandboxViolation(f"operator {type(node.op).__name__} is not allowed")
        return binary_op(self.budget, op, self.eval(node.left, scope), self.eval(node.right, scope))

    def _eval_UnaryOp(self, node: ast.UnaryOp, scope: Scope) -> Any:
        return _UNARY[type(node.op)](self.eval(node.operand, scope))

    def _eval_BoolOp(self, node: ast.BoolOp, scope: Scope) -> Any:
        is_and = isinstance(node.op, ast.And)
        value = None
        for expr in node.values:
            value = self.eval(expr, scope)
            if (not value) if is_and else value:
                return value
        return value

    def _eval_Compare(self, node: ast.Compare, scope: Scope) -> Any:
        left = self.eval(node.left, scope)
        result: Any = True
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = self.eval(comp, scope)
            if isinstance(left, ProbabilisticTensor) and isinstance(right, ProbabilisticTensor):
                check_pt_size(self.budget, [left, right])
            elif isinstance(left, _CONTAINERS) or (isinstance(right, _CONTAINERS) and not isinstance(op, _MEMBERSHIP)):
                guard_elements(self.budget, (left, right), "a comparison")
            elif isinstance(left, ProbabilisticTensor) and isinstance(op, _MEMBERSHIP):
                guard_elements(self.budget, (left, right), "a membership test")
            result = _CMPOPS[type(op)](left, right)
            if len(node.ops) > 1 and not result:
                return result
            left = right
        return result

    def _eval_IfExp(self, node: ast.IfExp, scope: Scope) -> Any:
        return self.eval(node.body if self.eval(node.test, scope) else node.orelse, scope)

    def _eval_Attribute(self, node: ast.Attribute, scope: Scope) -> Any:
        return get_attribute(self.eval(node.value, scope), node.attr, self.budget)

    def _subscript(self, obj: Any, key: Any) -> Any:
        if not isinstance(obj, _SUBSCRIPTABLE):
            raise SandboxViolation(f"subscripting a {type(obj).__name__} is not allowed")
        return obj[key]

    def _eval_Subscript(self, node: ast.Subscript, scope: Scope) -> Any:
        obj = self.eval(node.value, scope)
        result = self._subscript(obj, self.eval(node.slice, scope))
        if isinstance(result, (list, tuple, str)) and result is not obj and len(result) > 1:
            self.budget.allocate(len(result), "slicing")
        return result

    def _eval_Slice(self, node: ast.Slice, scope: Scope) -> slice:
        def part(e: ast.expr | None) -> Any:
            return None if e is None else self.eval(e, scope)

        return slice(part(node.lower), part(node.upper), part(node.step))

    def _eval_List(self, node: ast.List, scope: Scope) -> list:
        return [self.eval(e, scope) for e in node.elts]

    def _eval_Tuple(self, node: ast.Tuple, scope: Scope) -> tuple:
        return guard_new_tuple(self.budget, tuple([self.eval(e, scope) for e in node.elts]))

    def _eval_Set(self, node: ast.Set, scope: Scope) -> set:
        return {self.eval(e, scope) for e in node.elts}

    def _eval_Dict(self, node: ast.Dict, scope: Scope) -> dict:
        if any(k is None for k in node.keys):
            raise SandboxViolation("dict unpacking (**) is not allowed")
        return {self.eval(k, scope): self.eval(v, scope) for k, v in zip(node.keys, node.values, strict=True)}

    def _eval_JoinedStr(self, node: ast.JoinedStr, scope: Scope) -> str:
        parts = [self.eval(v, scope) for v in node.values]
        self.budget.check_size(sum(len(p) for p in parts), "an f-string")
        return "".join(parts)

    def _eval_FormattedValue(self, node: ast.FormattedValue, scope: Scope) -> str:
        value = self.eval(node.value, scope)
        check_stringify(self.budget, value, "an f-string value")
        if node.conversion == ord("r"):
            value = repr(value)
        elif node.conversion == ord("s"):
            value = str(value)
        elif node.conversion == ord("a"):
            value = ascii(value)
        spec = "" if node.format_spec is None else self.eval(node.format_spec, scope)
        check_format_spec(self.budget, spec)
        return format(value, spec)

    def _eval_Lambda(self, node: ast.Lambda, scope: Scope) -> ProgramFunction:
        return ProgramFunction(self, "<lambda>", node, scope)

    # comprehensions: the first iterable is evaluated at once, the rest as items are asked for
    def _comprehension(self, node: Any, scope: Scope) -> Iterator[Scope]:
        inner = Scope(scope)
        first = iter(self.eval(node.generators[0].iter, scope))

        def loop(i: int, items: Iterator[Any]) -> Iterator[Scope]:
            gen = node.generators[i]
            for item in items:
                self.assign(gen.target, item, inner)
                if all(self.eval(cond, inner) for cond in gen.ifs):
                    if i + 1 < len(node.generators):
                        yield from loop(i + 1, iter(self.eval(node.generators[i + 1].iter, inner)))
                    else:
                        yield inner

        return loop(0, first)

    def _eval_ListComp(self, node: ast.ListComp, scope: Scope) -> list:
        return [self.eval(node.elt, s) for s in self._comprehension(node, scope)]

    def _eval_GeneratorExp(self, node: ast.GeneratorExp, scope: Scope) -> Iterator[Any]:
        """Lazy, as in Python: any(score(q).exists() for q in qs) stops at the first true one."""
        return (self.eval(node.elt, s) for s in self._comprehension(node, scope))

    def _eval_SetComp(self, node: ast.SetComp, scope: Scope) -> set:
        return {self.eval(node.elt, s) for s in self._comprehension(node, scope)}

    def _eval_DictComp(self, node: ast.DictComp, scope: Scope) -> dict:
        return {self.eval(node.key, s): self.eval(node.value, s) for s in self._comprehension(node, scope)}

    # ---- calls -------------------------------------------------------------------------
    def _check_callable(self, func: Any) -> None:
        if isinstance(func, (ProgramFunction, BoundMethod, ProbabilisticTensor)) or id(func) in self._callable_ids:
            return
        raise SandboxViolation(f"calling a {type(func).__name__} is not allowed")

    def _eval_Call(self, node: ast.Call, scope: Scope) -> Any:
        func = self.eval(node.func, scope)
        self._check_callable(func)
        args = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise SandboxViolation("starred arguments (*args) are not allowed")
            args.append(self.eval(a, scope))
        kwargs = {}
        for kw in node.keywords:
            if kw.arg is None:
                raise SandboxViolation("keyword unpacking (**kwargs) is not allowed")
            kwargs[kw.arg] = self.eval(kw.value, scope)
        operands = [a for a in args if isinstance(a, ProbabilisticTensor)]
        if isinstance(func, BoundMethod) and isinstance(func.obj, ProbabilisticTensor):
            operands.append(func.obj)
        if len(operands) > 1:
            check_pt_size(self.budget, operands)
        pre = None if isinstance(func, (ProgramFunction, BoundMethod, ProbabilisticTensor)) else PRE_CALL.get(func)
        if pre is not None:
            args = pre(self.budget, args, kwargs)
        try:
            result = func(*args, **kwargs)
        except RecursionError:
            raise CallDepthError("program nesting too deep for the interpreter (recursion?)") from None
        except MemoryError:
            raise ProgramMemoryError("the program ran out of memory") from None
        if func is str or (type(func) is type and func in ALLOCATING_CALLS):
            self.budget.check_size(len(result), f"the result of {getattr(func, '__name__', 'a call')}()")
        return result
