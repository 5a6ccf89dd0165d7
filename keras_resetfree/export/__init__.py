"""Stateful TFLite (Micro) export: a per-frame step model whose recurrent state lives in it.

Conversion uses TensorFlow; a model made on JAX or PyTorch is converted in a
TensorFlow-backend subprocess. `write_sketch` writes the model-specific files
of the Arduino keyword-spotting sketch in `keras_resetfree/export/resetfree_kws`.
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
from keras_resetfree.export.quantization import (
    quantization_aware,
    state_extremes,
    state_ranges,
)
from keras_resetfree.export.sketch import (
    op_resolver_source,
    write_feature_config,
    write_sketch,
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
    "op_resolver_source",
    "quantization_aware",
    "state_extremes",
    "state_ranges",
    "to_tflite",
    "write_c_array",
    "write_feature_config",
    "write_sketch",
]
