"""Quantization-aware fine-tuning: weights, activations and recurrent state on the int8 grid.

Post-training calibration sets each int8 tensor's scale from the range it
reached on the calibration stream, and rounds a model that never saw the
rounding: on the keyword spotter, the matmul outputs and weights, the sums,
the products and the gate activations each cost a point or more of argmax
agreement with float (`docs/benchmarks.md`). Here every tensor that the
exported step graph quantizes gets its range before conversion: weights on
TFLite's symmetric grid (`max |w| / 127`, per tensor or per channel), the
sigmoid and tanh outputs on the fixed grids of TFLite's int8 LOGISTIC and
TANH, the recurrent state at its extremes over a long stream plus a margin
(a never-reset stream goes further than any sample; NOTES: the converter
reads the state's range after READ_VARIABLE), capped where the cell bounds
it, and every other tensor (the model's input, matmul outputs, sums,
products) at its extremes over the stream. The layers then round each of
them at every step (`layers.quantized`): fine-tuning with the same loss
teaches the model the board's arithmetic, and `to_tflite` hands the
converter these ranges (FakeQuant ops), so that training and the converter
agree on every scale.
"""

import keras
import numpy as np

from keras_resetfree._compat import flat_layers
from keras_resetfree.layers import SSM, SpikingRNN
from keras_resetfree.layers.base import ResetFreeRNN
from keras_resetfree.layers.quantized import recording
from keras_resetfree.layers.quantized_dense import QuantizedDense
from keras_resetfree.streaming import Streamer, unrolled

# The TFLite converter (TensorFlow 2.21) crashes the process (segmentation
# fault) on the FakeQuant ops of these layers' step graphs (a threshold, then
# a cast of the spikes), so their state keeps post-training calibration.
NOT_CONVERTIBLE = (SpikingRNN,)


def check_convertible(model):
    """Raises ValueError, before the converter crashes (a segmentation fault,
    TensorFlow 2.21): for a SpikingRNN with `state_ranges`, and for an SSM with
    `state_ranges` but no `tensor_ranges` (the converter fuses its rounded
    state's readout into a FULLY_CONNECTED it cannot verify; with every tensor
    on its grid, as `quantization_aware` sets them, it converts)."""
    spiking = [
        layer.name
        for layer in flat_layers(model)
        if isinstance(layer, NOT_CONVERTIBLE) and layer.state_ranges is not None
    ]
    if spiking:
        raise ValueError(
            f"Layers {spiking} hold an 8-bit state (state_ranges), which the TFLite "
            "converter cannot take for SpikingRNN layers (it crashes on their "
            "FakeQuant ops); convert the model without state_ranges (post-training "
            "calibration)."
        )
    state_only = [
        layer.name
        for layer in flat_layers(model)
        if isinstance(layer, SSM)
        and layer.state_ranges is not None
        and not layer.tensor_ranges
    ]
    if state_only:
        raise ValueError(
            f"SSM layers {state_only} hold an 8-bit state (state_ranges) but no "
            "tensor_ranges: the TFLite converter crashes on that step graph. Give "
            "every tensor its grid (export.quantization_aware does), or convert "
            "without state_ranges (post-training calibration)."
        )


def weight_quantization(model):
    """The weight grid of a model from `quantization_aware`: `"per_tensor"`,
    `"per_channel"`, or None (float weights)."""
    modes = {
        getattr(layer, "weight_quantization", None) for layer in flat_layers(model)
    } - {None}
    return modes.pop() if modes else None


def _recurrent_layers(model):
    return [layer for layer in flat_layers(model) if isinstance(layer, ResetFreeRNN)]


def _observe(model, stream, max_frames, pieces=8):
    """Runs `model` never reset over at most `max_frames` frames of `stream`
    (`pieces` stretches side by side, one frame at a time, eagerly) and
    returns the state's extremes (as `state_extremes`) and the record of
    every fake-quantized tensor's extremes (`layers.quantized.recording`)."""
    stream = np.asarray(stream, "float32")
    if stream.ndim != 2 or not len(stream):
        raise ValueError(
            f"state_extremes needs a (frames, features) stream; got shape {stream.shape}."
        )
    if not np.isfinite(stream).all():
        raise ValueError("The stream holds NaN or Inf values.")
    frames = min(len(stream), int(max_frames)) // pieces * pieces
    if frames == 0:
        raise ValueError(
            f"The stream needs at least {pieces} frames; got {len(stream)}."
        )
    batch = stream[:frames].reshape(pieces, frames // pieces, -1)
    streamer = Streamer(model, batch_size=pieces, jit_compile=False)
    low = [[np.inf] * len(s) for s in streamer.state]
    high = [[-np.inf] * len(s) for s in streamer.state]
    with unrolled(streamer._layers), recording() as record:
        for t in range(batch.shape[1]):
            streamer.step(batch[:, t : t + 1])
            for i, layer_state in enumerate(streamer.state):
                for j, value in enumerate(layer_state):
                    low[i][j] = min(low[i][j], float(value.min()))
                    high[i][j] = max(high[i][j], float(value.max()))
    return [list(zip(lo, hi)) for lo, hi in zip(low, high)], record


def state_extremes(model, stream, max_frames=20000, pieces=8):
    """`[[(min, max) per state tensor] per recurrent layer]` of `model` run, never
    reset, over at most `max_frames` frames of `stream` `(frames, features)`,
    read after every frame (`pieces` stretches of the stream side by side)."""
    return _observe(model, stream, max_frames, pieces)[0]


def state_ranges(model, stream, margin=0.25, max_frames=20000):
    """The `(low, high)` of every state tensor, per recurrent layer (by name): the
    extremes over `stream` widened by `margin` of their span (a never-reset
    stream goes further than any sample), within the cell's bounds where it has
    them, and always including 0."""
    return _state_ranges(model, state_extremes(model, stream, max_frames), margin)


def _state_ranges(model, extremes, margin):
    ranges = {}
    for layer, observed in zip(_recurrent_layers(model), extremes):
        chosen = []
        for bound, (low, high) in zip(layer.cell.state_bounds(), observed):
            span = max(high - low, 1e-3)
            # Always include 0: the initial state, and where int8 is exact.
            low, high = min(low - margin * span, 0.0), max(high + margin * span, 0.0)
            if bound is not None:
                # A bound is no range: a state that stays well inside it would
                # lose resolution (and a slowly integrating state its steps)
                # on the bound's grid; it only caps the margin.
                low, high = max(low, bound[0]), min(high, bound[1])
            chosen.append((float(low), float(high)))
        ranges[layer.name] = chosen
    return ranges


def _tensor_ranges(record, first):
    """`{id(owner): {name: (low, high)}}` from a recording: each tensor's extremes
    (always including 0, where int8 is exact), and an `"input"` range only for
    `first`, the layer that takes the model's input (later layers take a
    tensor already on a grid)."""
    ranges = {}
    for owner, name, low, high in record.values():
        if name == "input" and owner is not first:
            continue
        span = max(high - low, 1e-3)
        low, high = min(low, 0.0), max(high, 0.0)
        if high - low < span:
            high = low + span
        ranges.setdefault(id(owner), {})[name] = (float(low), float(high))
    return ranges


def quantization_aware(model, stream, margin=0.25, max_frames=20000, per_channel=False):
    """A copy of `model` that computes as the int8 board does: weights, activations
    and recurrent state rounded to their 8-bit grids at every step.

    Fine-tune it a few epochs with the model's own loss (the straight-through
    gradient passes the rounding), then convert it with `to_tflite(...,
    quantize="int8")`: the converter takes every range from it (see the
    module docstring for how each is chosen) instead of calibrating them.
    `Dense` layers become `layers.QuantizedDense`. For VanillaRNN, GRU, LSTM
    and SSM (and LeakyReadout, whose state only is quantized) layers: the
    converter crashes on SpikingRNN step graphs with FakeQuant ops, so models
    with those are refused.

    Args:
        model: a trained Keras model with `keras_resetfree` recurrent layers.
        stream: `(frames, features)` features of a long, never-reset stream
            (the training stream), for the ranges of the states the cell
            does not bound and of the other tensors.
        margin: how far beyond the observed extremes an unbounded state's
            range reaches, as a fraction of their span.
        max_frames: frames of `stream` used.
        per_channel: weights on one grid per output channel (as `to_tflite`
            with `per_channel=True`) instead of one per weight tensor (the
            keyword spotter's default, `recipes.deploy.convert_spotter`).

    Returns:
        The new model (same weights; compile it before fitting).
    """
    if not _recurrent_layers(model):
        raise ValueError(
            f"Model '{model.name}' has no keras_resetfree recurrent layer: no state "
            "to quantize."
        )
    refused = [
        layer.name for layer in flat_layers(model) if isinstance(layer, NOT_CONVERTIBLE)
    ]
    if refused:
        raise ValueError(
            f"quantization_aware covers VanillaRNN, GRU, LSTM, SSM and LeakyReadout "
            f"layers; {refused} are SpikingRNN, whose quantized state the TFLite "
            "converter cannot take (it crashes): convert them post-training."
        )
    weights = "per_channel" if per_channel else "per_tensor"

    def clone(layer):
        if type(layer) is keras.layers.Dense:
            return QuantizedDense.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    aware = keras.models.clone_model(model, clone_function=clone)
    aware.set_weights(model.get_weights())
    for layer in flat_layers(aware):
        # What loading a saved model does after setting weights: an adapted
        # Normalization, for one, takes its mean and variance from them here.
        if hasattr(layer, "finalize_state"):
            layer.finalize_state()
    # Still the float model: the ranges are its own.
    extremes, record = _observe(aware, stream, max_frames)
    states = _state_ranges(aware, extremes, margin)
    first = next((o for o, _, _, _ in record.values()), None)
    tensors = _tensor_ranges(record, first)
    for layer in flat_layers(aware):
        if not isinstance(layer, (ResetFreeRNN, QuantizedDense)):
            continue
        # A recurrent layer's tensors are named by its cell.
        owner = layer.cell if isinstance(layer, ResetFreeRNN) else layer
        ranges = {**tensors.get(id(owner), {}), **owner.fixed_ranges()}
        if isinstance(layer, ResetFreeRNN):
            layer.set_quantization(states[layer.name], ranges, weights)
        else:
            layer.set_quantization(ranges, weights)
    return aware
