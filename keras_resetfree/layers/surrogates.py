"""Surrogate gradients for spiking neurons.

A surrogate is called on `v - threshold` and returns spikes: exactly the
Heaviside step `H(v > threshold)` in the forward pass, with the derivative of
a smooth `primitive` in the backward pass:

    spikes = H(x) + (F(x) - stop_gradient(F(x)))

The two `F` terms cancel exactly in floating point, so spikes are exactly 0
or 1; the straight-through form needs no custom-gradient machinery and works
on every backend. At inference (`training=False`) only the step is computed,
which gives the same values and keeps the surrogate's ops (erf) out of
exported graphs.
"""

import math

import keras
from keras import ops

from keras_resetfree.layers.base import PACKAGE


class Surrogate:
    """Base class: subclasses define `primitive(x)`, whose derivative is the surrogate."""

    def primitive(self, x):
        raise NotImplementedError

    def __call__(self, x, training=True):
        step = ops.cast(ops.greater(x, 0.0), x.dtype)
        if not training:  # inference (streaming, export): the step alone, same values
            return step
        smooth = self.primitive(x)
        return step + (smooth - ops.stop_gradient(smooth))

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _gaussian_cdf(x, mu, sigma):
    return 0.5 * (1.0 + ops.erf((x - mu) / (sigma * math.sqrt(2.0))))


@keras.saving.register_keras_serializable(package=PACKAGE)
class MultiGaussian(Surrogate):
    """Multi-Gaussian surrogate of Yin, Corradi & Bohte (2021).

        dS/dx = scale * [(1 + h) N(x; 0, sigma) - h N(x; sigma, s sigma) - h N(x; -sigma, s sigma)]

    Args:
        sigma: width of the central Gaussian.
        h: height of the two negative side lobes.
        s: width ratio of the side lobes.
        scale: overall gain of the gradient.
    """

    def __init__(self, sigma=0.5, h=0.15, s=6.0, scale=0.5):
        self.sigma, self.h, self.s, self.scale = sigma, h, s, scale

    def primitive(self, x):
        wide = self.s * self.sigma
        return self.scale * (
            (1.0 + self.h) * _gaussian_cdf(x, 0.0, self.sigma)
            - self.h * _gaussian_cdf(x, self.sigma, wide)
            - self.h * _gaussian_cdf(x, -self.sigma, wide)
        )

    def get_config(self):
        return {"sigma": self.sigma, "h": self.h, "s": self.s, "scale": self.scale}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FastSigmoid(Surrogate):
    """Fast-sigmoid surrogate (SuperSpike, Zenke & Ganguli 2018): `dS/dx = 1 / (1 + slope |x|)^2`.

    Args:
        slope: sharpness of the surrogate.
    """

    def __init__(self, slope=25.0):
        self.slope = slope

    def primitive(self, x):
        return x / (1.0 + self.slope * ops.abs(x))

    def get_config(self):
        return {"slope": self.slope}


_BY_NAME = {"multi_gaussian": MultiGaussian, "fast_sigmoid": FastSigmoid}


def get(identifier):
    """Returns a surrogate from a name (`"multi_gaussian"`, `"fast_sigmoid"`), a config or an instance."""
    if isinstance(identifier, Surrogate):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    raise ValueError(
        f"Unknown surrogate {identifier!r}: use one of {sorted(_BY_NAME)}, "
        "or an instance of keras_resetfree.layers.surrogates.Surrogate."
    )
