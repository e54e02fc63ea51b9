"""The soft-logic tensor algebra that NePTune programs compose (paper, Table 2).

A :class:`ProbabilisticTensor` holds soft truth values in [0, 1] (kind "prob") or soft
numbers (kind "number", e.g. counts) over named object variables: a 0-d tensor is a
statement about the image, ("x",) a vector over the boxes, ("x", "y") an n x n relation.
Operands are aligned by variable name and broadcast, so ``sphere("x") & left("x", "y")``
is a relation over (x, y). Logic (&, |, ~, implies), quantifiers (exists, forall),
count, iota (a distribution picking "the" object), contract (sum over shared
variables, the join of a distribution with a relation) and soft number comparisons
(==, !=, >, <, >=, <=) are each a few torch operations, all differentiable, so a loss on
a program's result flows back into the VLM's yes/no probabilities.

How an operation is computed is chosen by :class:`Semantics` (t-norm, quantifier,
iota, tau/gamma of comparisons). To add a new semantics: write the raw-tensor kernel
in ``ops.py`` and add it to ``TNORMS``, ``QUANTIFIERS`` or ``IOTAS`` under a new name,
allow that name in ``Semantics.__post_init__`` (semantics.py), and add its values to the
hand-computed table in tests/test_algebra.py and the semantics lists of the property tests.

Programs may call the functions in ``PROGRAM_API`` and the methods in ``PROGRAM_METHODS``.

:class:`LazyTensor` (``lazy.py``) is a ProbabilisticTensor whose entries are fetched on demand
through a callback: ``score(question, 2)`` returns one, so a relation contracted with an
``iota`` evaluates only the columns the distribution weighs. Every other operation reads all
entries, so it computes exactly what the eager tensor computes.
"""

from .api import PROGRAM_API, PROGRAM_METHODS, and_op, count, exists, forall, implies, iota, not_op, or_op
from .lazy import LazyPolicy, LazyStore, LazyTensor
from .semantics import Semantics
from .tensor import ProbabilisticTensor

__all__ = [
    "LazyPolicy",
    "LazyStore",
    "LazyTensor",
    "PROGRAM_API",
    "PROGRAM_METHODS",
    "ProbabilisticTensor",
    "Semantics",
    "and_op",
    "count",
    "exists",
    "forall",
    "implies",
    "iota",
    "not_op",
    "or_op",
]
