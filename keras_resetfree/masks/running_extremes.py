"""Causal running maximum over the last axis, on whichever backend a layer runs."""


def running_max(backend, x):
    """`y[..., t] = max(x[..., :t + 1])` for a `DynamicBackend` (tf.data included).

    Keras has no cumulative maximum op, so each backend's own is used.
    """
    name = backend.name
    if name == "jax":
        import jax

        return jax.lax.cummax(x, axis=x.ndim - 1)
    if name == "torch":
        import torch

        return torch.cummax(x, dim=-1).values
    if name == "tensorflow":
        import tensorflow as tf

        # tf.scan runs over the leading axis: put time first and back.
        rank = len(x.shape)
        perm = [rank - 1] + list(range(rank - 1))
        inverse = list(range(1, rank)) + [0]
        scanned = tf.scan(tf.maximum, tf.transpose(x, perm))
        return tf.transpose(scanned, inverse)
    import numpy as np

    return np.maximum.accumulate(x, axis=-1)


def drifting_floor(backend, level, rise):
    """Causal noise floor: follows drops at once, rises by at most `rise` per frame.

    `floor_t = min(level_t, floor_{t-1} + rise)` = `rise * t + min_{k<=t}(level_k - rise * k)`,
    computed in closed form with a running maximum.
    """
    b = backend
    t = b.numpy.arange(b.shape(level)[-1], dtype=level.dtype)
    return rise * t - running_max(b, -(level - rise * t))


def drifting_peak(backend, level, decay):
    """Causal peak: follows rises at once, falls by at most `decay` per frame."""
    b = backend
    t = b.numpy.arange(b.shape(level)[-1], dtype=level.dtype)
    return running_max(b, level + decay * t) - decay * t
