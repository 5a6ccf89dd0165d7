"""Quantization-aware fine-tuning of the recurrent state.

Post-training calibration sets each int8 state's scale from the range the
state reached on the calibration stream, and a never-reset stream goes
further than any short stream does (NOTES: the converter reads the state's
range after READ_VARIABLE). Here the range is fixed before conversion: the
state's extremes over a long stream plus a margin, capped where the cell
bounds the state (a GRU's `h` within tanh's int8 grid, spikes in [0, 1]);
the layers then hold their state on that 8-bit grid at every step
(`ResetFreeRNN.state_ranges`), so that fine-tuning with the same loss
teaches the model the board's arithmetic and `to_tflite` hands the
converter these ranges (FakeQuant ops on the state's read and write).
"""

import keras
import numpy as np

from keras_resetfree._compat import flat_layers
from keras_resetfree.layers import SSM, SpikingRNN
from keras_resetfree.layers.base import ResetFreeRNN
from keras_resetfree.streaming import Streamer

# The TFLite converter (TensorFlow 2.21) crashes the process (segmentation
# fault) on the FakeQuant ops of these layers' step graphs, so their state
# keeps post-training calibration.
NOT_CONVERTIBLE = (SSM, SpikingRNN)


def check_convertible(model):
    """Raises ValueError, before the converter crashes, for a layer of
    `NOT_CONVERTIBLE` with `state_ranges`."""
    refused = [
        layer.name
        for layer in flat_layers(model)
        if isinstance(layer, NOT_CONVERTIBLE) and layer.state_ranges is not None
    ]
    if refused:
        raise ValueError(
            f"Layers {refused} hold an 8-bit state (state_ranges), which the TFLite "
            "converter cannot take for SSM and SpikingRNN layers (it crashes on their "
            "FakeQuant ops); convert the model without state_ranges (post-training "
            "calibration)."
        )


def _recurrent_layers(model):
    return [layer for layer in flat_layers(model) if isinstance(layer, ResetFreeRNN)]


def state_extremes(model, stream, max_frames=20000, pieces=8):
    """`[[(min, max) per state tensor] per recurrent layer]` of `model` run, never
    reset, over at most `max_frames` frames of `stream` `(frames, features)`,
    read after every frame (`pieces` stretches of the stream side by side)."""
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
    streamer = Streamer(model, batch_size=pieces)
    low = [[np.inf] * len(s) for s in streamer.state]
    high = [[-np.inf] * len(s) for s in streamer.state]
    for t in range(batch.shape[1]):
        streamer.step(batch[:, t : t + 1])
        for i, layer_state in enumerate(streamer.state):
            for j, value in enumerate(layer_state):
                low[i][j] = min(low[i][j], float(value.min()))
                high[i][j] = max(high[i][j], float(value.max()))
    return [list(zip(lo, hi)) for lo, hi in zip(low, high)]


def state_ranges(model, stream, margin=0.25, max_frames=20000):
    """The `(low, high)` of every state tensor, per recurrent layer (by name): the
    extremes over `stream` widened by `margin` of their span (a never-reset
    stream goes further than any sample), within the cell's bounds where it has
    them, and always including 0."""
    extremes = state_extremes(model, stream, max_frames)
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


def quantization_aware(model, stream, margin=0.25, max_frames=20000):
    """A copy of `model` whose recurrent layers hold their state on an 8-bit grid.

    Fine-tune it a few epochs with the model's own loss (the straight-through
    gradient passes the rounding), then convert it with `to_tflite(...,
    quantize="int8")`: the converter takes the state's ranges from it instead
    of calibrating them. Weights and the other activations are still
    calibrated after training. For VanillaRNN, GRU, LSTM (and LeakyReadout)
    layers: the converter crashes on SSM and SpikingRNN step graphs with
    FakeQuant ops, so models with those are refused.

    Args:
        model: a trained Keras model with `keras_resetfree` recurrent layers.
        stream: `(frames, features)` features of a long, never-reset stream
            (the training stream), for the ranges of states the cell does
            not bound.
        margin: how far beyond the observed extremes an unbounded state's
            range reaches, as a fraction of their span.
        max_frames: frames of `stream` used.

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
            f"quantization_aware covers VanillaRNN, GRU, LSTM and LeakyReadout layers; "
            f"{refused} are SSM or SpikingRNN, whose quantized state the TFLite converter "
            "cannot take (it crashes): convert them post-training."
        )
    ranges = state_ranges(model, stream, margin, max_frames)

    def clone(layer):
        config = layer.get_config()
        if layer.name in ranges:
            config["state_ranges"] = ranges[layer.name]
        return layer.__class__.from_config(config)

    aware = keras.models.clone_model(model, clone_function=clone)
    aware.set_weights(model.get_weights())
    for layer in flat_layers(aware):
        # What loading a saved model does after setting weights: an adapted
        # Normalization, for one, takes its mean and variance from them here.
        if hasattr(layer, "finalize_state"):
            layer.finalize_state()
    return aware
