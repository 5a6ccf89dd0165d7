"""Edits of a converted `.tflite` flatbuffer that TFLite Micro's kernels need (TensorFlow only)."""

import flatbuffers
import numpy as np
from tensorflow.lite.python import schema_py_generated as schema


def two_dimensional_fully_connected(data):
    """The model with every FULLY_CONNECTED that keeps more than two output dimensions
    rewritten as a 2-D FULLY_CONNECTED followed by a RESHAPE to the same shape.

    Why: on a Dense layer applied to `(1, frames, units)` the converter emits
    one FULLY_CONNECTED with `keep_num_dims`. With per-tensor int8 weights,
    TFLite Micro's CMSIS-NN kernel runs such an op as a 1x1 convolution whose
    scratch-buffer check (`TFLITE_DCHECK_GE(buffer_conv_1x1_idx, 4)`) fails in
    any build without NDEBUG: the board prints HALTED and stops (seen under
    QEMU with the pinned TFLite Micro tree, `mcu/check.py`). A 2-D
    FULLY_CONNECTED takes CMSIS-NN's plain fully-connected kernel instead.
    The outputs are the same integers; the file grows by one RESHAPE.
    """
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
    reshape = _opcode(model, schema.BuiltinOperator.RESHAPE)
    changed = False
    for graph in model.subgraphs:
        operators = []
        for op in graph.operators:
            operators.append(op)
            code = model.operatorCodes[op.opcodeIndex]
            options = op.builtinOptions
            if (
                max(code.builtinCode, code.deprecatedBuiltinCode)
                != schema.BuiltinOperator.FULLY_CONNECTED
                or not getattr(options, "keepNumDims", False)
                or len(graph.tensors[op.outputs[0]].shape) <= 2
            ):
                continue
            index = op.outputs[0]
            output = graph.tensors[index]
            shape = [int(d) for d in output.shape]
            flat = schema.TensorT()
            flat.name = output.name + b"/2d"
            flat.type = output.type
            flat.shape = [int(np.prod(shape[:-1])), shape[-1]]
            flat.quantization = output.quantization
            flat.buffer = _buffer(model, None)
            target = schema.TensorT()
            target.name = output.name + b"/shape"
            target.type = schema.TensorType.INT32
            target.shape = [len(shape)]
            target.buffer = _buffer(model, np.asarray(shape, "<i4").tobytes())
            graph.tensors += [flat, target]
            op.outputs = [len(graph.tensors) - 2]
            options.keepNumDims = False
            step = schema.OperatorT()
            step.opcodeIndex = reshape
            step.inputs = [len(graph.tensors) - 2, len(graph.tensors) - 1]
            step.outputs = [index]
            step.builtinOptionsType = schema.BuiltinOptions.ReshapeOptions
            step.builtinOptions = schema.ReshapeOptionsT()
            step.builtinOptions.newShape = shape
            operators.append(step)
            changed = True
        graph.operators = operators
    if not changed:
        return data
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _opcode(model, builtin):
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _buffer(model, content):
    buffer = schema.BufferT()
    if content is not None:
        buffer.data = np.frombuffer(content, np.uint8)
    model.buffers.append(buffer)
    return len(model.buffers) - 1
