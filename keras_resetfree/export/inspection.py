"""What a converted step model costs on a board: flash, arena, ops, state, MACs."""

import contextlib
import ctypes
import os
import re
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from keras_resetfree.export.ops import _interpreter, op_details


@dataclass
class ModelReport:
    """Sizes and costs of a TFLite step model.

    Attributes:
        flash_bytes: the flatbuffer's size (weights and graph, in flash).
        arena_bytes: the smallest tensor arena the TFLite Micro interpreter
            loads and runs the model with (`measure_arena`); None when
            tflite-micro is not installed.
        ops: the builtin ops used, with counts.
        resource_variables: number of state variables (VAR_HANDLE ops).
        state_bytes: bytes of state held in those variables.
        macs_per_frame: multiply-accumulates of FULLY_CONNECTED ops per frame.
        frames_per_step: frames per Invoke.
        input: name, shape, dtype, scale, zero point of the input.
        output: the same for the output.
    """

    flash_bytes: int
    arena_bytes: object
    ops: dict
    resource_variables: int
    state_bytes: int
    macs_per_frame: int
    frames_per_step: int
    input: dict
    output: dict

    def summary(self):
        arena = (
            f"{self.arena_bytes:,} B"
            if self.arena_bytes
            else "unknown (tflite-micro not installed)"
        )
        ops = ", ".join(f"{k} x{v}" for k, v in sorted(self.ops.items()))
        return (
            f"flash {self.flash_bytes:,} B, arena {arena}, {self.resource_variables} state variables "
            f"({self.state_bytes:,} B), {self.macs_per_frame:,} MACs per frame, "
            f"{self.frames_per_step} frame(s) per Invoke\n"
            f"input {self.input}\noutput {self.output}\nops: {ops}"
        )


def _io(detail):
    scales = detail["quantization_parameters"]["scales"]
    zeros = detail["quantization_parameters"]["zero_points"]
    return {
        "name": detail["name"],
        "shape": [int(d) for d in detail["shape"]],
        "dtype": np.dtype(detail["dtype"]).name,
        "scale": float(scales[0]) if len(scales) else None,
        "zero_point": int(zeros[0]) if len(zeros) else None,
    }


class _Captured:
    text = ""


@contextlib.contextmanager
def _captured_output():
    """Captures what C++ code prints on file descriptors 1 and 2 (TFLite Micro's DebugLog)."""
    captured = _Captured()
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+") as capture:
        saved = [os.dup(1), os.dup(2)]
        os.dup2(capture.fileno(), 1)
        os.dup2(capture.fileno(), 2)
        try:
            yield captured
        finally:
            ctypes.CDLL(None).fflush(None)  # C stdio buffers it until flushed
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)
            capture.seek(0)
            captured.text = capture.read()


def measure_arena(data):
    """The smallest tensor arena (bytes, to 128) the TFLite Micro interpreter loads and runs with.

    Starts from the interpreter's own RecordingMicroAllocator total (what
    `print_allocations` reports) and steps up by 128 bytes until the model
    loads and runs. None when tflite-micro is not installed.
    """
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        return None
    interpreter = runtime.Interpreter.from_bytes(data)
    detail = interpreter.get_input_details(0)
    interpreter.set_input(np.zeros(detail["shape"], detail["dtype"]), 0)
    interpreter.invoke()
    with _captured_output() as report:
        interpreter.print_allocations()
    match = re.search(r"Arena allocation total (\d+) bytes", report.text)
    if not match:
        return None
    # The recording leaves out part of what the interpreter needs at prepare
    # time (seen: about 2 KB for an int8 GRU); step up from it to the first
    # arena that loads and runs. (Probing far below it can crash the runtime.)
    size = int(match.group(1))
    with _captured_output():  # each refused size is reported on stderr
        return _first_working_arena(runtime, data, detail, size)


def _first_working_arena(runtime, data, detail, size):
    for _ in range(512):
        try:
            probe = runtime.Interpreter.from_bytes(data, arena_size=size)
            probe.set_input(np.zeros(detail["shape"], detail["dtype"]), 0)
            probe.invoke()
            return size
        except Exception:
            size += 128
    return None


def inspect(data):
    """A `ModelReport` of `.tflite` bytes; the arena is measured with the TFLite Micro interpreter."""
    interpreter = _interpreter(data)
    interpreter.allocate_tensors()
    details = op_details(data)
    ops = {}
    for name, _ in details:
        ops[name] = ops.get(name, 0) + 1
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    raw = interpreter._get_ops_details()
    state_bytes = 0
    macs = 0
    for op in raw:
        if op["op_name"] == "READ_VARIABLE":
            out = tensors[op["outputs"][0]]
            state_bytes += int(np.prod(out["shape"])) * np.dtype(out["dtype"]).itemsize
        if op["op_name"] == "FULLY_CONNECTED":
            weights = tensors[op["inputs"][1]]["shape"]
            rows = int(np.prod(tensors[op["outputs"][0]]["shape"][:-1]))
            macs += rows * int(weights[0]) * int(weights[1])
    inputs = interpreter.get_input_details()
    frames = int(inputs[0]["shape"][1]) if len(inputs[0]["shape"]) == 3 else 1
    return ModelReport(
        flash_bytes=len(data),
        arena_bytes=measure_arena(data),
        ops=ops,
        resource_variables=ops.get("VAR_HANDLE", 0),
        state_bytes=state_bytes,
        macs_per_frame=macs // max(frames, 1),
        frames_per_step=frames,
        input=_io(inputs[0]),
        output=_io(interpreter.get_output_details()[0]),
    )
