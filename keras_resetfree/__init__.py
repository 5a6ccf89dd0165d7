"""keras-resetfree: recurrent networks that run on an endless stream and never reset.

Implements the reset-free training of "Never Reset Again" (Yin & Corradi,
arXiv 2412.15983) for Keras 3 on TensorFlow, JAX and PyTorch.
"""

from keras_resetfree._output import captured_output

# TensorFlow prints its start-up lines (oneDNN, no CUDA driver, CPU features)
# from C++ before its logging is set up, so no log level hides them, on every
# import in every process; nobody can act on them. Errors still show them.
with captured_output(echo_on_error=True):
    import keras  # noqa: F401

from keras_resetfree import datasets, features, layers, losses, masks, metrics, streams
from keras_resetfree.losses import ResetFreeLoss
from keras_resetfree.streaming import Streamer
from keras_resetfree.version import __version__

# Heavier or optional parts load on first use: `keras_resetfree.export` (TensorFlow
# Lite), `recipes`, `tuning` (KerasTuner), `experiment`.
_LAZY = ("experiment", "export", "recipes", "tuning")


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"keras_resetfree.{name}")
    raise AttributeError(f"module 'keras_resetfree' has no attribute {name!r}")


__all__ = [
    "ResetFreeLoss",
    "Streamer",
    "__version__",
    "datasets",
    "features",
    "layers",
    "losses",
    "masks",
    "metrics",
    "streams",
]
