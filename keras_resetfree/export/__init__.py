"""Stateful TFLite (Micro) export: a per-frame step model whose recurrent state lives in it.

Conversion uses TensorFlow; a model made on JAX or PyTorch is converted in a
TensorFlow-backend subprocess.
"""

from keras_resetfree.export.c_array import write_c_array
from keras_resetfree.export.converter import to_tflite
from keras_resetfree.export.inspection import ModelReport, inspect, measure_arena
from keras_resetfree.export.micro import MicroStepper
from keras_resetfree.export.ops import (
    TFLM_BUILTINS,
    UnsupportedOpError,
    check_ops,
    op_details,
)

__all__ = [
    "TFLM_BUILTINS",
    "MicroStepper",
    "ModelReport",
    "UnsupportedOpError",
    "check_ops",
    "inspect",
    "measure_arena",
    "op_details",
    "to_tflite",
    "write_c_array",
]
