"""The TensorFlow side of the export: the model's step as a tf.function with state variables.

Also a script (`python -m keras_resetfree.export.tf_step MODEL OUT QUANTIZE
FRAMES STATE CALIBRATION [STREAM]`), which `to_tflite` runs with the
TensorFlow backend when the model was made on another backend.
"""

import contextlib
import os
import sys
import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_resetfree._compat import (
    disable_per_channel,
    enable_variable_quantization,
    flat_layers,
    quantize_selectively,
)
from keras_resetfree._output import captured_output
from keras_resetfree.export.flatbuffer import two_dimensional_fully_connected
from keras_resetfree.export.ops import TFLM_BUILTINS, converter_error
from keras_resetfree.layers import SpikingRNN
from keras_resetfree.streaming import Streamer, unrolled

# The subprocess conversion's `per_frame` layer names, comma-separated.
PER_FRAME_VARIABLE = "KERAS_RESETFREE_PER_FRAME"


class _StepModule(tf.Module):
    """`step(x)`: the model on `frames` frames from the state held in `self.state`."""

    def __init__(self, model, frames, state, per_frame=()):
        super().__init__()
        self.streamer = Streamer(
            model, batch_size=1, jit_compile=False, per_frame=per_frame
        )
        initial = self.streamer._initial_state()
        self.sizes = [len(layer_state) for layer_state in initial]
        flat = [
            keras.ops.convert_to_numpy(s)
            for layer_state in initial
            for s in layer_state
        ]
        self.initial = flat
        # Weights become constants (flash), never variables: a variable
        # weight would be a resource variable in RAM on the board.
        self.constants = [
            (v, tf.constant(keras.ops.convert_to_numpy(v.value)))
            for v in model.variables
        ]
        features = model.inputs[0].shape[-1]
        spec = tf.TensorSpec((1, frames, features), tf.float32, name="x")
        if state == "internal":
            self.state = [tf.Variable(s, name=f"state_{i}") for i, s in enumerate(flat)]
            self.step = tf.function(self._internal, input_signature=[spec])
        else:
            specs = [
                tf.TensorSpec(s.shape, tf.float32, name=f"state_{i}")
                for i, s in enumerate(flat)
            ]
            self.step = tf.function(self._external, input_signature=[spec, *specs])

    def _nest(self, flat):
        nested, i = [], 0
        for size in self.sizes:
            nested.append(list(flat[i : i + size]))
            i += size
        return nested

    def _run(self, x, flat_states):
        with (
            unrolled(self.streamer._layers),
            keras.StatelessScope(state_mapping=self.constants),
        ):
            outputs, new = self.streamer._forward(x, self._nest(flat_states))
        return outputs, [s for layer_state in new for s in layer_state]

    def _internal(self, x):
        outputs, new = self._run(x, [v.read_value() for v in self.state])
        for variable, value in zip(self.state, new):
            variable.assign(value)
        return outputs

    def _external(self, x, *states):
        outputs, new = self._run(x, list(states))
        return (outputs, *new)


def convert(
    model,
    stream,
    quantize,
    frames,
    state,
    calibration_frames,
    per_frame=(),
    per_channel=True,
):
    module = _StepModule(model, frames, state, per_frame)
    function = module.step.get_concrete_function()
    converter = _converter(
        module,
        function,
        stream,
        quantize,
        frames,
        state,
        calibration_frames,
        per_channel,
    )
    # The state variables still hold the initial state (calibration runs in
    # the converter's interpreter), which becomes the init subgraph's value.
    captured = None
    try:
        # The converter's C++ progress lines and TensorFlow's deprecation of the
        # interpreter it calibrates with are nothing a user can act on: kept
        # out of the output, shown only when the conversion fails.
        with _quiet() as captured:
            data = converter.convert()
    except Exception as error:
        if captured is not None and captured.text.strip():
            print(captured.text[-4000:], file=sys.stderr)
        names = [layer.name for layer in flat_layers(model)]
        unsupported = converter_error(error, function.graph, names)
        if unsupported is not None:
            spiking = [
                layer.name
                for layer in flat_layers(model)
                if isinstance(layer, SpikingRNN)
            ]
            if quantize == "int16x8" and spiking:
                unsupported = type(unsupported)(
                    f"{unsupported} The spiking layers ({', '.join(spiking)}) compare the "
                    "membrane with the threshold (GREATER) and cast spikes (CAST)."
                )
            raise unsupported from error
        raise
    if quantize == "int8" and not per_channel:
        # CMSIS-NN aborts on a per-tensor int8 FULLY_CONNECTED that keeps 3 dims.
        data = two_dimensional_fully_connected(data)
    return data


@contextlib.contextmanager
def _quiet():
    """The converter's output captured, and the interpreter's deprecation warning silenced."""
    with warnings.catch_warnings(), captured_output() as captured:
        warnings.filterwarnings(
            "ignore", message=r".*tf\.lite\.Interpreter is deprecated"
        )
        yield captured


def selective_int8(model, stream, float_ops, calibration_frames=2000, per_channel=True):
    """The model's int8 step model (one frame per step, internal state) with every op of
    the types in `float_ops` (e.g. `["LOGISTIC"]`) left in float, with QUANTIZE /
    DEQUANTIZE around it: TFLite's selective quantization (its QuantizationDebugger),
    to measure what quantizing each kind of op costs. Input and output are float32."""
    if set(float_ops) & {"QUANTIZE", "DEQUANTIZE"}:
        raise ValueError(
            f"float_ops names op types to keep in float; got {list(float_ops)}, which "
            "holds the quantizer's own ops."
        )
    unknown = sorted(set(float_ops) - TFLM_BUILTINS)
    if unknown:
        raise ValueError(
            f"float_ops {unknown} are not TFLite Micro builtin op names (such as "
            "'LOGISTIC' or 'FULLY_CONNECTED')."
        )
    module = _StepModule(model, 1, "internal")
    function = module.step.get_concrete_function()
    converter = _converter(
        module, function, stream, "int8", 1, "internal", calibration_frames, per_channel
    )
    with _quiet():
        return quantize_selectively(converter, float_ops)


def _converter(
    module, function, stream, quantize, frames, state, calibration_frames, per_channel
):
    """The TFLite converter of a `_StepModule`'s step, set up for `quantize`."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if state == "internal":
        converter.experimental_enable_resource_variables = True
    if quantize in ("int8", "int16x8"):
        usable = (min(len(stream), calibration_frames) // frames) * frames
        if usable == 0:
            raise ValueError(
                f"The representative stream has fewer than {frames} frames."
            )
        chunks = stream[:usable].reshape(-1, 1, frames, stream.shape[-1])

        def representative():
            # One continuous stream: the converter's calibration interpreter
            # carries internal state from call to call; external state is
            # fed back here. Samples are keyed by input name: the converted
            # model orders its inputs by name (state_0, ..., x), not as the
            # function's signature does.
            states = list(module.initial)
            for chunk in chunks:
                if state == "internal":
                    yield {"x": chunk}
                else:
                    yield {
                        "x": chunk,
                        **{f"state_{i}": s for i, s in enumerate(states)},
                    }
                    outputs = module.step(
                        tf.constant(chunk), *[tf.constant(s) for s in states]
                    )
                    states = [o.numpy() for o in outputs[1:]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        if quantize == "int8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = tf.int8
        else:  # int8 weights, int16 activations
            ops_set = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            converter.target_spec.supported_ops = [ops_set]
            converter.inference_input_type = converter.inference_output_type = tf.int16
        # Otherwise the state stays float32 with QUANTIZE/DEQUANTIZE around it.
        enable_variable_quantization(converter)
        if not per_channel:
            disable_per_channel(converter)
    return converter


def main(argv):
    model_path, out, quantize, frames, state, calibration, per_channel = argv[:7]
    stream = np.load(argv[7]) if len(argv) > 7 else None
    model = keras.saving.load_model(model_path)
    per_frame = [n for n in os.environ.get(PER_FRAME_VARIABLE, "").split(",") if n]
    data = convert(
        model,
        stream,
        quantize,
        int(frames),
        state,
        int(calibration),
        per_frame,
        per_channel == "per_channel",
    )
    with open(out, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main(sys.argv[1:])
