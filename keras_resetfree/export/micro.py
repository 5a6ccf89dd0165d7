"""Runs a converted step model in the real TFLite Micro interpreter, frame after frame."""

import numpy as np

from keras_resetfree.export.ops import _interpreter


def _require_tflm():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as error:  # pragma: no cover - environment dependent
        raise ImportError(
            "Running TFLite Micro needs the `tflm` extra: pip install 'keras-resetfree[tflm]'."
        ) from error
    return runtime


def _quantization(detail):
    scales = detail["quantization_parameters"]["scales"]
    zeros = detail["quantization_parameters"]["zero_points"]
    if np.dtype(detail["dtype"]) == np.float32 or not len(scales):
        return None
    return float(scales[0]), int(zeros[0])


class MicroStepper:
    """Feeds frames to a step model in `tflite_micro.runtime.Interpreter`, as a board would.

    Handles both state modes: internal (the model keeps its state; `reset()`
    calls the interpreter's reset, which sets every variable to zero, i.e.
    its zero point, and does not re-run the init subgraph) and external (the
    returned state is fed back on the next step; `reset()` restores the
    initial state). float32 in and out: int8 models are quantized and
    dequantized with the scales stored in the model.

    Args:
        data: the `.tflite` bytes from `to_tflite`.
        arena_size: TFLite Micro tensor arena in bytes (default: the runtime's).
    """

    def __init__(self, data, arena_size=None):
        if (
            not isinstance(data, bytes | bytearray)
            or len(data) < 8
            or data[4:8] != b"TFL3"
        ):
            kind = type(data).__name__
            raise ValueError(
                f"MicroStepper needs the bytes of a .tflite model (flatbuffer identifier "
                f"'TFL3'); got {kind} of {len(data) if hasattr(data, '__len__') else '?'} "
                "items that is not one."
            )
        runtime = _require_tflm()
        kwargs = {"arena_size": arena_size} if arena_size else {}
        self.interpreter = runtime.Interpreter.from_bytes(data, **kwargs)
        reference = _interpreter(data)
        inputs, outputs = reference.get_input_details(), reference.get_output_details()
        self.x_index = next(
            i for i, d in enumerate(inputs) if d["name"].endswith("_x:0")
        )
        x = inputs[self.x_index]
        self.frames, self.features = int(x["shape"][1]), int(x["shape"][2])
        self.x_quant, self.x_dtype = _quantization(x), np.dtype(x["dtype"])
        state_inputs = [
            (d["name"], i) for i, d in enumerate(inputs) if i != self.x_index
        ]
        self.state_inputs = [
            i
            for _, i in sorted(
                state_inputs, key=lambda t: int(t[0].split("_")[-1].split(":")[0])
            )
        ]
        by_position = sorted(
            range(len(outputs)),
            key=lambda i: int(outputs[i]["name"].rsplit(":", 1)[-1]),
        )
        self.y_index, self.state_outputs = by_position[0], by_position[1:]
        self.y_quant = _quantization(outputs[self.y_index])
        self.state_details = [inputs[i] for i in self.state_inputs]
        self.external = bool(self.state_inputs)
        self.reset()

    def reset(self):
        """Back to the initial state (all zeros for keras_resetfree's layers)."""
        self.interpreter.reset()
        self.states = [
            np.full(d["shape"], (_quantization(d) or (1.0, 0))[1], np.dtype(d["dtype"]))
            for d in self.state_details
        ]

    def quantize(self, frames):
        """Float frames as the model's input type takes them (its scale and zero point,
        rounded and saturated); unchanged for a float model."""
        x = np.asarray(frames, dtype="float32")
        if self.x_quant:
            scale, zero = self.x_quant
            limits = np.iinfo(self.x_dtype)
            x = np.clip(np.round(x / scale) + zero, limits.min, limits.max)
        return x.astype(self.x_dtype)

    def step(self, frames):
        """Runs `(frames_per_step, features)` float frames; returns float outputs `(frames_per_step, ...)`."""
        x = np.asarray(frames, dtype="float32").reshape(1, self.frames, self.features)
        self.interpreter.set_input(self.quantize(x), self.x_index)
        for index, value in zip(self.state_inputs, self.states):
            self.interpreter.set_input(value, index)
        self.interpreter.invoke()
        y = self.interpreter.get_output(self.y_index).astype("float32")
        if self.external:
            self.states = [
                self.interpreter.get_output(i).copy() for i in self.state_outputs
            ]
        if self.y_quant:
            scale, zero = self.y_quant
            y = (y - zero) * scale
        return y[0]

    def run(self, stream):
        """Streams `(frames, features)` step by step (frames a multiple of the step); returns outputs."""
        stream = np.asarray(stream, dtype="float32")
        usable = (len(stream) // self.frames) * self.frames
        return np.concatenate(
            [
                self.step(stream[t : t + self.frames])
                for t in range(0, usable, self.frames)
            ]
        )
