"""8-bit fake quantization of a layer's weights and named tensors, as TFLite's int8 kernels hold them.

A layer that mixes in `FakeQuantized` passes each tensor that the exported
step graph quantizes through `self.quantized(name, value)` and each weight
matrix through `self.quantized_weight(weight)`. Both do nothing until
`keras_resetfree.export.quantization_aware` sets the layer's ranges; then
the tensor is rounded to the int8 grid of its `(low, high)` (a FakeQuant op
on TensorFlow, which the TFLite converter reads as the tensor's scale) and
the weight to TFLite's symmetric int8 grid (`max |w| / 127`, per tensor or
per output channel). Fine-tuning through the rounding (straight-through
gradients) then trains the model the board runs.
"""

import contextlib

from keras import ops
from keras.quantizers import fake_quant_with_min_max_vars

WEIGHT_QUANTIZATION = (None, "per_tensor", "per_channel")

# The recorder of `recording()`, or None: `{(id(layer), name): [layer, name, low, high]}`.
_recorder = None


@contextlib.contextmanager
def recording():
    """While active, `FakeQuantized.quantized` leaves tensors as they are and records the
    extremes of each (eager execution only: it reads values). Yields the record,
    `{(id(layer), tensor name): [layer, tensor name, low, high]}`."""
    global _recorder
    saved, _recorder = _recorder, {}
    try:
        yield _recorder
    finally:
        _recorder = saved


def checked_weight_quantization(value, owner):
    if value not in WEIGHT_QUANTIZATION:
        raise ValueError(
            f"Layer '{owner}': weight_quantization must be one of "
            f"{WEIGHT_QUANTIZATION}, got {value!r}."
        )
    return value


def checked_tensor_ranges(ranges, owner):
    """`{name: (low, high)}` as floats with low < high, or None."""
    if ranges is None:
        return None
    checked = {}
    for name, pair in dict(ranges).items():
        pair = tuple(float(v) for v in pair)
        if len(pair) != 2 or not pair[0] < pair[1]:
            raise ValueError(
                f"Layer '{owner}': tensor_ranges['{name}'] needs (low, high) with "
                f"low < high; got {pair}."
            )
        checked[str(name)] = pair
    return checked


def tensor_ranges_config(ranges):
    """`tensor_ranges` as a layer's config holds it (lists, or None)."""
    return None if ranges is None else {k: list(v) for k, v in ranges.items()}


def weight_on_grid(weight, mode):
    """`weight` rounded to TFLite's symmetric int8 grid: scale `max |w| / 127` over the
    whole tensor (`"per_tensor"`) or per output channel, the last axis
    (`"per_channel"`); unchanged for None."""
    if mode is None:
        return weight
    if mode == "per_channel":
        bound = ops.max(ops.abs(weight), axis=tuple(range(len(weight.shape) - 1)))
        axis = -1
    else:
        bound = ops.max(ops.abs(weight))
        axis = None
    # A zero channel still needs a range; the bound is no training signal.
    bound = ops.stop_gradient(ops.maximum(bound, 1e-8))
    return fake_quant_with_min_max_vars(
        weight, -bound, bound, num_bits=8, narrow_range=True, axis=axis
    )


class FakeQuantized:
    """Mixin of a layer with fake-quantized weights and named tensors (see the module)."""

    #: `{tensor name: (low, high)}`, or None (float tensors).
    tensor_ranges = None
    #: One of `WEIGHT_QUANTIZATION`.
    weight_quantization = None

    def quantized(self, name, value):
        """`value` on the int8 grid of `tensor_ranges[name]` (as is without one)."""
        if _recorder is not None:
            low = float(ops.convert_to_numpy(ops.min(value)))
            high = float(ops.convert_to_numpy(ops.max(value)))
            seen = _recorder.setdefault((id(self), name), [self, name, low, high])
            seen[2], seen[3] = min(seen[2], low), max(seen[3], high)
            return value
        if not self.tensor_ranges or name not in self.tensor_ranges:
            return value
        low, high = self.tensor_ranges[name]
        return fake_quant_with_min_max_vars(value, low, high, num_bits=8)

    def quantized_weight(self, weight):
        return weight_on_grid(weight, self.weight_quantization)

    def fixed_ranges(self):
        """`{tensor name: (low, high)}` of tensors whose int8 grid the board fixes (the
        outputs of TFLite's int8 LOGISTIC and TANH): not taken from a stream."""
        return {}
