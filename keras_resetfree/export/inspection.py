"""What a converted step model costs on a board: flash, arena, ops, state, MACs."""

import dataclasses
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from keras_resetfree._compat import tflite_ops
from keras_resetfree._output import captured_output
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
        macs_per_frame: multiply-accumulates of FULLY_CONNECTED, CONV_2D and
            DEPTHWISE_CONV_2D ops per frame (per Invoke / frames per Invoke).
        frames_per_step: frames per Invoke.
        input: name, shape, dtype, scale, zero point of the input.
        output: the same for the output.
        external_state: the same for each state input of a model converted
            with `state="external"` (fed back from the matching output every
            Invoke); empty for internal state.
        weight_scales: `"per-channel"` or `"per-tensor"` for quantized
            weights (see `to_tflite(per_channel=...)`), `"float"` for float
            weights, None for a model without FULLY_CONNECTED or convolutions.
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
    external_state: list = dataclasses.field(default_factory=list)
    weight_scales: str = None

    def summary(self):
        arena = (
            f"{self.arena_bytes:,} B"
            if self.arena_bytes
            else "unknown (tflite-micro not installed)"
        )
        ops = ", ".join(f"{k} x{v}" for k, v in sorted(self.ops.items()))
        if self.external_state:
            state = f"{len(self.external_state)} external state tensors"
        else:
            state = f"{self.resource_variables} state variables"
        lines = [
            f"flash {self.flash_bytes:,} B, arena {arena}, {state} "
            f"({self.state_bytes:,} B), {self.macs_per_frame:,} MACs per frame, "
            f"{self.frames_per_step} frame(s) per Invoke"
            + (f", {self.weight_scales} weights" if self.weight_scales else ""),
            f"input {self.input}",
            f"output {self.output}",
            *(f"state in/out {tensor}" for tensor in self.external_state),
            f"ops: {ops}",
        ]
        return "\n".join(lines)


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
    with captured_output() as report:
        interpreter.print_allocations()
    match = re.search(r"Arena allocation total (\d+) bytes", report.text)
    if not match:
        return None
    # The recording leaves out part of what the interpreter needs at prepare
    # time (seen: about 2 KB for an int8 GRU); step up from it to the first
    # arena that loads and runs.
    return _first_working_arena(data, detail, int(match.group(1)))


# Runs in a child process: an arena a little too small can make the TFLite
# Micro runtime abort (seen: its tail allocator's free-byte count underflows,
# then an assertion kills the process) instead of refusing the model.
_PROBE = """
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
path, size, stop, dtype = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
shape = [int(d) for d in sys.argv[5:]]
data = open(path, "rb").read()
while size <= stop:
    print("try", size, flush=True)
    try:
        probe = runtime.Interpreter.from_bytes(data, arena_size=size)
        probe.set_input(np.zeros(shape, dtype), 0)
        probe.invoke()
        print("ok", size, flush=True)
        break
    except Exception:
        size += 128
"""


def _first_working_arena(data, detail, size, limit=65536):
    stop = size + limit
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.tflite")
        with open(path, "wb") as f:
            f.write(data)
        while size <= stop:
            shape = [str(int(d)) for d in detail["shape"]]
            dtype = np.dtype(detail["dtype"]).name
            result = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _PROBE,
                    path,
                    str(size),
                    str(stop),
                    dtype,
                    *shape,
                ],
                capture_output=True,
                text=True,
            )
            tried = re.findall(r"^(try|ok) (\d+)$", result.stdout, re.M)
            if tried and tried[-1][0] == "ok":
                return int(tried[-1][1])
            if result.returncode == 0 or not tried:
                return None  # every size refused, or the child could not start
            size = int(tried[-1][1]) + 128  # the runtime died on that size
    return None


def inspect(data):
    """A `ModelReport` of `.tflite` bytes; the arena is measured with the TFLite Micro interpreter."""
    interpreter = _interpreter(data)
    with captured_output():  # "Created TensorFlow Lite XNNPACK delegate": no news
        interpreter.allocate_tensors()
    details = op_details(data)
    ops = {}
    for name, _ in details:
        ops[name] = ops.get(name, 0) + 1
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    raw = tflite_ops(interpreter)
    state_bytes = 0
    macs = 0
    scales = set()
    for op in raw:
        if op["op_name"] in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D"):
            scales.add(_weight_scales(tensors[op["inputs"][1]]))
        if op["op_name"] == "READ_VARIABLE":
            out = tensors[op["outputs"][0]]
            state_bytes += int(np.prod(out["shape"])) * np.dtype(out["dtype"]).itemsize
        if op["op_name"] == "FULLY_CONNECTED":
            weights = tensors[op["inputs"][1]]["shape"]
            rows = int(np.prod(tensors[op["outputs"][0]]["shape"][:-1]))
            macs += rows * int(weights[0]) * int(weights[1])
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            # Filters (out, h, w, in) or depthwise (1, h, w, out): each output
            # element takes h * w (* in for CONV_2D) multiply-accumulates.
            weights = tensors[op["inputs"][1]]["shape"]
            outputs = int(np.prod(tensors[op["outputs"][0]]["shape"]))
            per_output = int(weights[1]) * int(weights[2])
            if op["op_name"] == "CONV_2D":
                per_output *= int(weights[3])
            macs += outputs * per_output
    # With external state the frames are the input named `x` and the first
    # output; the others are state.
    inputs = interpreter.get_input_details()
    x = next((d for d in inputs if d["name"].endswith("_x:0")), inputs[0])
    outputs = sorted(
        interpreter.get_output_details(),
        key=lambda d: int(d["name"].rsplit(":", 1)[-1]) if ":" in d["name"] else 0,
    )
    frames = int(x["shape"][1]) if len(x["shape"]) == 3 else 1
    external = [_io(d) for d in inputs if d is not x]
    for d in inputs:
        if d is not x:
            state_bytes += int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize
    return ModelReport(
        flash_bytes=len(data),
        arena_bytes=measure_arena(data),
        ops=ops,
        resource_variables=ops.get("VAR_HANDLE", 0),
        state_bytes=state_bytes,
        macs_per_frame=macs // max(frames, 1),
        frames_per_step=frames,
        input=_io(x),
        output=_io(outputs[0]),
        external_state=external,
        # A model mixing both (none of ours) reads as per-channel.
        weight_scales=max(scales, key=_SCALES_ORDER.index) if scales else None,
    )


_SCALES_ORDER = ["float", "per-tensor", "per-channel"]


def _weight_scales(weights):
    if np.dtype(weights["dtype"]).kind == "f":
        return "float"
    # Once allocated, the interpreter lists a per-tensor scale once per channel.
    if len(np.unique(weights["quantization_parameters"]["scales"])) > 1:
        return "per-channel"
    return "per-tensor"
