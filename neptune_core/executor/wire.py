"""What crosses the pipe between the sandbox process and its parent.

Sandbox -> parent messages are JSON (the parent never unpickles what a program could shape):
``{"op": "call", "name": ..., "request": {...}}`` for a primitive call and ``{"op": "done", ...}``
with the program's result; ``{"op": "replay", "name": ..., "request": {...}}`` reports a call
the sandbox answered from a reused reply (no answer is sent; the parent runs it, in order), with
``"expect": reply`` when the sandbox gave the reply itself (a lazy relation's handle), for the
parent to check. A program's value travels as tagged JSON: scalars as themselves,
``{"list": [...]}``, ``{"tuple": [...]}``, ``{"set": [...]}``, ``{"dict": [[k, v], ...]}``,
``{"pt": {"data", "vars", "kind", "dtype"}}`` for a ProbabilisticTensor (rebuilt in the parent
with the run's semantics), ``{"opaque": type name}`` for anything else (functions, ranges...).
Parent -> sandbox messages are pickled by the trusted side: the run request ``(source, n, reply
scope)``, and each primitive's reply ``("ok", reply, reusable)`` (tensors as raw bytes) or error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Hashable
from typing import Any

import torch

from probabilistic_tensor import ProbabilisticTensor, Semantics

MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # a longer message from the sandbox is a protocol violation
# After handing the other side work (a call, a reply, a program), each side polls its pipe this
# long before it sleeps: most answers come within it, and a process woken from sleep starts
# later, often on a colder core, than one that kept polling. Bounded, so a slow model call or
# a long program costs at most this much CPU per hand-off.
SPIN_S = 0.0005


def poll_briefly(poll: Callable[[int], list], since: float) -> bool:
    """Whether ``poll`` (a ``select.poll`` object's ``poll``) reports the pipe readable within SPIN_S of
    ``since``, polling without sleeping until then."""
    until = since + SPIN_S
    while not poll(0):
        if time.perf_counter() >= until:
            return False
    return True


_PLAIN_TYPES = (str, int, type(None))


def request_key(name: str, request: dict[str, Any]) -> Hashable:
    """What a primitive's request is known by (a reply kept in the sandbox, a request checked in the
    parent): equal keys, equal requests. A tuple of ``name`` and the request's items when every value
    is exactly a str, an int or None (most requests: a question, a box index); else ``name`` and the
    request's JSON text (so True and 1, 1 and 1.0 stay apart). TypeError/ValueError if not JSON-able."""
    if all(type(v) in _PLAIN_TYPES for v in request.values()):
        return (name, *request.items())
    return f"{name}\0{json.dumps(request)}"


class OpaqueValue:
    """A returned value that cannot leave the sandbox (a function, a range...): only its type name does."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<{self.type_name}>"


def encode_value(value: Any) -> Any:
    """A JSON-able form of a program's (size-checked) value."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return {"list": [encode_value(v) for v in value]}
    if isinstance(value, tuple):
        return {"tuple": [encode_value(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {"set": [encode_value(v) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[encode_value(k), encode_value(v)] for k, v in value.items()]}
    if isinstance(value, ProbabilisticTensor):
        data = value.data.detach().cpu()
        return {
            "pt": {
                "data": data.tolist(),
                "vars": list(value.vars),
                "kind": value.kind,
                "dtype": str(data.dtype).removeprefix("torch."),
            }
        }
    return {"opaque": type(value).__name__}


_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}


def decode_value(obj: Any, semantics: Semantics) -> Any:
    """The parent's copy of a value sent by :func:`encode_value`; ValueError, TypeError or OverflowError
    (a number too big for the tensor's dtype) if malformed."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if not isinstance(obj, dict) or len(obj) != 1:
        raise ValueError("malformed value")
    ((tag, body),) = obj.items()
    if tag == "list":
        return [decode_value(v, semantics) for v in body]
    if tag == "tuple":
        return tuple(decode_value(v, semantics) for v in body)
    if tag == "set":
        return {decode_value(v, semantics) for v in body}
    if tag == "dict":
        return {decode_value(k, semantics): decode_value(v, semantics) for k, v in body}
    if tag == "pt":
        data = torch.tensor(body["data"], dtype=_DTYPES[body["dtype"]])
        return ProbabilisticTensor(data, vars=tuple(body["vars"]), semantics=semantics, kind=body["kind"])
    if tag == "opaque":
        return OpaqueValue(str(body)[:100])
    raise ValueError(f"malformed value tag {tag!r:.40}")


def to_wire(reply: Any) -> Any:
    """A primitive's reply for the pipe: a torch tensor becomes ("tensor", raw bytes, dtype name, shape)
    (pickling a torch tensor itself would route it through shared memory; raw bytes are the cheapest)."""
    if isinstance(reply, torch.Tensor):
        t = reply.detach()
        dtype = str(t.dtype).removeprefix("torch.")
        if t.device.type != "cpu":
            t = t.cpu()
        if t.dtype == torch.bfloat16:  # numpy has no bfloat16: travel as float32, exactly
            t = t.float()
        return ("tensor", t.numpy().tobytes(), dtype, tuple(t.shape))  # tobytes: C order, whatever the strides
    return reply


def from_wire(reply: Any) -> Any:
    """The sandbox's side of :func:`to_wire`."""
    if isinstance(reply, tuple) and len(reply) == 4 and reply[0] == "tensor":
        _, raw, dtype_name, shape = reply
        dtype = _DTYPES.get(dtype_name, torch.float32)
        sent = torch.float32 if dtype == torch.bfloat16 else dtype
        data = torch.frombuffer(bytearray(raw), dtype=sent) if raw else torch.empty(0, dtype=sent)
        data = data.reshape(shape)
        return data if data.dtype == dtype else data.to(dtype)
    return reply


def wire_size(reply: Any) -> int:
    """About how many bytes a reply from :func:`to_wire` holds."""
    if isinstance(reply, tuple) and len(reply) == 4 and reply[0] == "tensor":
        return len(reply[1]) + 64
    return len(reply) + 64 if isinstance(reply, str) else 64


__all__ = [
    "MAX_MESSAGE_BYTES",
    "SPIN_S",
    "OpaqueValue",
    "decode_value",
    "encode_value",
    "from_wire",
    "poll_briefly",
    "request_key",
    "to_wire",
    "wire_size",
]
