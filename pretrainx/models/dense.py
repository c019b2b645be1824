"""The dense layers' matmul with its weight gradient written inputs-first.

JAX's transpose rule gives a dense layer's kernel gradient as ``dot(dy, x)`` over the token
axes, then a transpose. XLA:CPU's dot kernels want the contracted axis innermost on the left,
so it transposes ``dy`` (tokens x features out) to get there, and fuses whatever produced
``dy`` into that transposed write: the MLP's GELU backward ran as a strided, unvectorised loop
(1.5-1.7 ms of each of the baby GPT's 4 layers per step on this 2-core CPU, ~12 % of the step,
2026-12-07 ``pretrainx profile``). Written ``dot(x, dy)``, the transposed operand is the layer's
input, 4x smaller in an MLP's first layer, and the producer of ``dy`` stays a plain elementwise
loop. Same products, same sums: the gradients agree to float32 rounding (bit for bit in a
micro-benchmark of the baby GPT's MLP; ``tests/test_dense_grads.py``).

``TransformerConfig.dense_grads``: "auto" (inputs-first on a CPU, JAX's own rule elsewhere,
where the GPU's and TPU's matmuls take either layout and the partitioner sees the plain dot),
"inputs_first", "jax".
"""
from __future__ import annotations

import functools
import math

import jax

DENSE_GRADS = ("auto", "inputs_first", "jax")


def _contract(lhs, rhs, c: int):
    """A dense layer's product: the last ``c`` axes of ``lhs`` against the first ``c`` of ``rhs``."""
    axes = (tuple(range(lhs.ndim - c, lhs.ndim)), tuple(range(c)))
    return jax.lax.dot_general(lhs, rhs, (axes, ((), ())))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _dense(lhs, rhs, c: int):
    return _contract(lhs, rhs, c)


def _dense_fwd(lhs, rhs, c: int):
    return _contract(lhs, rhs, c), (lhs, rhs)


def _dense_bwd(c: int, saved, dy):
    lhs, rhs = saved
    k = math.prod(rhs.shape[:c])
    x_NxK, w_KxM = lhs.reshape(-1, k), rhs.reshape(k, -1)
    dy_NxM = dy.reshape(x_NxK.shape[0], -1)
    dx_NxK = dy_NxM @ w_KxM.T
    dw_KxM = jax.lax.dot_general(x_NxK, dy_NxM, (((0,), (0,)), ((), ())))   # x first: see above
    return dx_NxK.reshape(lhs.shape).astype(lhs.dtype), dw_KxM.reshape(rhs.shape).astype(rhs.dtype)


_dense.defvjp(_dense_fwd, _dense_bwd)


def inputs_first_dot_general(lhs, rhs, dimension_numbers, precision=None,
                             preferred_element_type=None, **kwargs):
    """``lax.dot_general`` for a dense layer's contraction (the last c axes of the input with the
    first c of the kernel, no batch axes, default precision): the same forward, the backward
    above; any other contraction goes to ``lax.dot_general`` unchanged."""
    (lhs_axes, rhs_axes), (lhs_batch, rhs_batch) = dimension_numbers
    c = len(lhs_axes)
    plain = (not lhs_batch and not rhs_batch and precision is None and not kwargs
             and preferred_element_type is None
             and tuple(lhs_axes) == tuple(range(lhs.ndim - c, lhs.ndim))
             and tuple(rhs_axes) == tuple(range(c)))
    if not plain:
        return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                                   preferred_element_type=preferred_element_type, **kwargs)
    return _dense(lhs, rhs, c)


def dense_dot_general(choice: str):
    """The ``dot_general`` a dense layer of a model configured with ``dense_grads=choice`` uses
    (None: flax's default, ``lax.dot_general``)."""
    if choice == "inputs_first" or (choice == "auto" and jax.default_backend() == "cpu"):
        return inputs_first_dot_general
    return None
