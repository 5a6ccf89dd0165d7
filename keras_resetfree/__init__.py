"""keras-resetfree: recurrent networks that run on an endless stream and never reset.

Implements the reset-free training of "Never Reset Again" (Yin & Corradi,
arXiv 2412.15983) for Keras 3 on TensorFlow, JAX and PyTorch.
"""

from keras_resetfree import datasets, layers, losses, streams
from keras_resetfree.losses import ResetFreeLoss
from keras_resetfree.streaming import Streamer
from keras_resetfree.version import __version__

__all__ = [
    "ResetFreeLoss",
    "Streamer",
    "__version__",
    "datasets",
    "layers",
    "losses",
    "streams",
]
