"""`QuantizedDense`: a Dense layer with int8 fake quantization (see `layers.quantized`)."""

import keras
from keras import ops

from keras_resetfree.layers.base import PACKAGE
from keras_resetfree.layers.quantized import (
    FakeQuantized,
    checked_tensor_ranges,
    checked_weight_quantization,
    tensor_ranges_config,
)


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantizedDense(FakeQuantized, keras.layers.Dense):
    """`keras.layers.Dense` with int8 fake quantization of its kernel, input and output.

    What `keras_resetfree.export.quantization_aware` puts in place of each
    `Dense` of a model; the tensors are named `"input"` and `"output"` (after
    the activation, which TFLite fuses into FULLY_CONNECTED).

    Args:
        units, **kwargs: as `keras.layers.Dense`.
        tensor_ranges: `{"input" | "output": (low, high)}` or None.
        weight_quantization: None, `"per_tensor"` or `"per_channel"`.
    """

    def __init__(self, units, tensor_ranges=None, weight_quantization=None, **kwargs):
        super().__init__(units, **kwargs)
        self.set_quantization(tensor_ranges, weight_quantization)

    def set_quantization(self, tensor_ranges, weight_quantization):
        self.tensor_ranges = checked_tensor_ranges(tensor_ranges, self.name)
        self.weight_quantization = checked_weight_quantization(
            weight_quantization, self.name
        )

    def call(self, inputs, training=None):
        x = ops.matmul(
            self.quantized("input", inputs), self.quantized_weight(self.kernel)
        )
        if self.bias is not None:
            x = x + self.bias
        if self.activation is not None:
            x = self.activation(x)
        return self.quantized("output", x)

    def get_config(self):
        return {
            **super().get_config(),
            "tensor_ranges": tensor_ranges_config(self.tensor_ranges),
            "weight_quantization": self.weight_quantization,
        }
