"""Model in, checked TFLite bytes out: a per-frame step graph whose recurrent state lives in it."""

import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from keras_resetfree._compat import flat_layers
from keras_resetfree.export.ops import UnsupportedOpError, check_ops

QUANTIZE = ("float", "int8", "int16x8")
STATE = ("internal", "external")


def to_tflite(
    model,
    representative_stream=None,
    quantize="int8",
    frames_per_step=1,
    state="internal",
    calibration_frames=2000,
    per_frame=(),
    per_channel=None,
):
    """Converts a trained model into a stateful TFLite (Micro) step model.

    The step graph runs `frames_per_step` frames (the time loop unrolled: no
    WHILE op) through the model's own layers, with every weight a constant
    (flash) and the recurrent state either inside the model as resource
    variables initialised to the layers' initial state (`state="internal"`:
    a microcontroller calls Invoke once per step and never resets), or as
    extra inputs and outputs (`state="external"`, for runtimes without
    resource variables: the caller feeds the returned state back).

    With `quantize="int8"`: full-integer weights, activations, input, output
    and (internal) state. Calibration feeds `representative_stream` as one
    continuous stream through the stateful graph, so the state's ranges are
    those of never-reset operation. The input/output scales and zero points
    are in the model (see `inspect`). `quantize="int16x8"` keeps int8
    weights but int16 activations, input, output and state (TFLite's 16x8
    mode, which TFLite Micro runs): a few KB more flash and twice the state,
    for closer agreement with float where int8 activations are too coarse
    (models with low-margin outputs); spiking layers cannot use it (TFLite
    has no 16x8 GREATER). A model from `export.quantization_aware` (its
    layers' ranges set) converts to int8 only: its weights', activations' and
    state's ranges are taken from it, not calibrated.

    Conversion needs TensorFlow. On another backend the model is saved as
    `.keras` and converted in a TensorFlow-backend subprocess, so a model
    trained on JAX or PyTorch converts the same way, provided it survives a
    `.keras` round trip (registered layers; a `Lambda` of a Python function
    does not).

    Args:
        model: a Sequential or functional model of `keras_resetfree.layers`
            (and ordinary layers), input `(batch, frames, features)`.
        representative_stream: `(frames, features)` (or `(1, frames,
            features)`) float features of a realistic stream; needed for int8
            and int16x8.
        quantize: `"int8"`, `"int16x8"` or `"float"`.
        frames_per_step: frames per Invoke.
        state: `"internal"` or `"external"`.
        calibration_frames: frames of the stream used for calibration.
        per_frame: names of layers you vouch act on each frame alone (see
            `Streamer`); any other layer not known to be per-frame is refused.
        per_channel: one weight scale per output channel (True, TFLite's
            default; None: the grid a `quantization_aware` model was trained
            on, else True) or one per weight tensor (False). Per-channel scales
            are stored in the flatbuffer (a float scale and an int64 zero
            point per channel) and copied into the arena: for a GRU(64)
            per-tensor weights save about 9 KB of flash and 3 KB of arena.
            Measure what they cost in agreement (`benchmarks/int8_families.py`).
            Ignored for `quantize="float"`.

    Returns:
        The `.tflite` flatbuffer as bytes.

    Raises:
        ValueError: bad arguments, or an op TFLite Micro cannot run (the
            message names the op and the layer it comes from); nothing is
            returned in that case.
    """
    if quantize not in QUANTIZE:
        raise ValueError(f"quantize must be one of {QUANTIZE}, got {quantize!r}.")
    if state not in STATE:
        raise ValueError(f"state must be one of {STATE}, got {state!r}.")
    if int(frames_per_step) < 1:
        raise ValueError(f"frames_per_step must be >= 1, got {frames_per_step}.")
    stream = None
    if representative_stream is not None:
        stream = _checked_stream(representative_stream, model)
    if quantize != "float" and stream is None:
        raise ValueError(
            f"{quantize} quantization needs a representative_stream to calibrate on."
        )
    import keras

    from keras_resetfree.streaming import _recurrent_layers

    # Refuses layers that cannot stream (here, on every backend, before converting).
    _recurrent_layers(model, tuple(per_frame))
    from keras_resetfree.export.quantization import (
        check_convertible,
        weight_quantization,
    )

    check_convertible(model)
    aware = [
        layer.name
        for layer in flat_layers(model)
        if getattr(layer, "state_ranges", None) is not None
        or getattr(layer, "tensor_ranges", None) is not None
    ]
    trained_on = weight_quantization(model)
    if per_channel is None:
        per_channel = trained_on != "per_tensor"
    elif (
        trained_on is not None
        and quantize == "int8"
        and (trained_on != ("per_channel" if per_channel else "per_tensor"))
    ):
        raise ValueError(
            f"The model's weights were trained on the {trained_on.replace('_', '-')} "
            f"int8 grid (export.quantization_aware); convert it with "
            f"per_channel={trained_on == 'per_channel'} (or None), not {per_channel}."
        )
    if aware and quantize != "int8":
        raise ValueError(
            f"Layers {aware} compute on 8-bit grids (their ranges, from "
            f"export.quantization_aware): convert them with quantize='int8', not "
            f"{quantize!r}, or convert the model they were made from."
        )
    if quantize != "float":
        _warn_if_normalization_first(model)
    if keras.backend.backend() == "tensorflow":
        from keras_resetfree.export.tf_step import convert
    else:
        convert = _convert_in_subprocess
    data = convert(
        model,
        stream,
        quantize,
        int(frames_per_step),
        state,
        int(calibration_frames),
        tuple(per_frame),
        bool(per_channel),
    )
    check_ops(data, [layer.name for layer in flat_layers(model)])
    return data


def _warn_if_normalization_first(model):
    import keras

    first = next(
        (
            layer
            for layer in flat_layers(model)
            if not isinstance(layer, keras.layers.InputLayer)
        ),
        None,
    )
    if isinstance(first, keras.layers.Normalization):
        warnings.warn(
            f"The model starts with a Normalization layer ({first.name}): in int8 its raw input "
            "gets one scale for every feature, coarse for features of small range. Standardise "
            "outside the model (in float, e.g. on the board as the resetfree_kws sketch does) and "
            "convert the model behind the normalization.",
            stacklevel=3,
        )


def _checked_stream(representative_stream, model):
    """The calibration stream as `(frames, features)` float32, or a ValueError saying what is
    wrong with it (a non-finite value crashes the converter or silently spoils the scales)."""
    stream = np.asarray(representative_stream)
    if stream.dtype.kind not in "fiu" or stream.ndim not in (2, 3):
        raise ValueError(
            "representative_stream must be a numeric (frames, features) or (1, frames, "
            f"features) array; got dtype {stream.dtype} and shape {stream.shape}."
        )
    if stream.ndim == 3 and stream.shape[0] != 1:
        raise ValueError(
            f"representative_stream must be one continuous stream; got a batch of "
            f"{stream.shape[0]} (shape {stream.shape}): concatenate them in time."
        )
    features = model.inputs[0].shape[-1]
    if stream.shape[-1] != features:
        raise ValueError(
            f"representative_stream has {stream.shape[-1]} features per frame; model "
            f"'{model.name}' takes {features}."
        )
    stream = stream.reshape(-1, stream.shape[-1]).astype("float32")
    if len(stream) == 0:
        raise ValueError("representative_stream has no frames.")
    finite = np.isfinite(stream).all(axis=-1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"representative_stream has NaN or Inf in {len(bad)} frame(s) (first: "
            f"{bad[:5].tolist()}); calibration would crash or spoil the int8 scales. "
            "Clean the stream first."
        )
    return stream


def _convert_in_subprocess(
    model,
    stream,
    quantize,
    frames_per_step,
    state,
    calibration_frames,
    per_frame=(),
    per_channel=True,
):
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model.save(folder / "model.keras")
        arguments = [str(folder / "model.keras"), str(folder / "out.tflite"), quantize,
                     str(frames_per_step), state, str(calibration_frames),
                     "per_channel" if per_channel else "per_tensor"]  # fmt: skip
        if stream is not None:
            np.save(folder / "stream.npy", stream)
            arguments.append(str(folder / "stream.npy"))
        env = {
            **os.environ,
            "KERAS_BACKEND": "tensorflow",
            "KERAS_RESETFREE_PER_FRAME": ",".join(per_frame),
        }
        result = subprocess.run(
            [sys.executable, "-m", "keras_resetfree.export.tf_step", *arguments],
            env=env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            message = result.stderr.strip().splitlines()
            last = message[-1] if message else ""
            # The child's own errors keep their type: the same as on TensorFlow.
            if last.startswith("keras_resetfree.export.ops.UnsupportedOpError: "):
                raise UnsupportedOpError(last.split(": ", 1)[1])
            raise RuntimeError(
                "TFLite conversion (TensorFlow-backend subprocess) failed: "
                + (message[-1] if message else "no message")
                + "\n"
                + result.stderr[-3000:]
            )
        return (folder / "out.tflite").read_bytes()
