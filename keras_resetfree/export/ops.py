"""Which ops a converted model uses, and whether TFLite Micro can run them."""

import re

from keras_resetfree._compat import tflite_ops
from keras_resetfree._output import captured_output

# Builtin ops with TFLite Micro kernels (tensorflow/lite/micro/micro_mutable_op_resolver.h),
# used when the tflite-micro package is not installed to ask the runtime itself.
TFLM_BUILTINS = frozenset(
    """ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL BATCH_TO_SPACE_ND
    BROADCAST_ARGS BROADCAST_TO CALL_ONCE CAST CEIL CIRCULAR_BUFFER CONCATENATION CONV_2D COS CUMSUM
    DEPTH_TO_SPACE DEPTHWISE_CONV_2D DEQUANTIZE DIV ELU EMBEDDING_LOOKUP EQUAL ETHOSU EXP EXPAND_DIMS
    FILL FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER GATHER_ND GREATER GREATER_EQUAL HARD_SWISH
    IF L2_NORMALIZATION L2_POOL_2D LEAKY_RELU LESS LESS_EQUAL LOG LOG_SOFTMAX LOGICAL_AND LOGICAL_NOT
    LOGICAL_OR LOGISTIC MAX_POOL_2D MAXIMUM MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL PACK PAD PADV2
    PRELU QUANTIZE READ_VARIABLE REDUCE_MAX RELU RELU6 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR
    ROUND RSQRT SELECT_V2 SHAPE SIN SLICE SOFTMAX SPACE_TO_BATCH_ND SPACE_TO_DEPTH SPLIT SPLIT_V
    SQRT SQUARE SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM SVDF TANH TRANSPOSE TRANSPOSE_CONV
    UNIDIRECTIONAL_SEQUENCE_LSTM UNPACK VAR_HANDLE WHILE ZEROS_LIKE""".split()
)


class UnsupportedOpError(ValueError):
    """A converted model holds an op TFLite Micro cannot run; names the op and its layer."""


def _interpreter(data):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    import warnings

    # Its "Created TensorFlow Lite XNNPACK delegate" line is no news to a user.
    with warnings.catch_warnings(), captured_output():
        warnings.simplefilter("ignore")
        return Interpreter(model_content=data)


def op_details(data):
    """`[(op_name, [output tensor names])]` of the model's main graph, in order."""
    interpreter = _interpreter(data)
    tensors = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    return [
        (op["op_name"], [tensors.get(i, "") for i in op["outputs"]])
        for op in tflite_ops(interpreter)
    ]


def _layer_of(names, layer_names=()):
    """The layer a tensor or op name comes from: the first path component naming a layer.

    TensorFlow may add `_1` to a name scope; with `layer_names` the model's
    own name is found under it.
    """
    known = set(layer_names)
    for name in names:
        parts = [p for p in re.split(r"[/;]", name) if p]
        for part in parts:
            if part in known:
                return part
            base = re.sub(r"_\d+$", "", part)
            if base in known:
                return base
        if not known and len(parts) > 1:
            return parts[1] if parts[0].startswith("functional") else parts[0]
    return "unknown layer"


def check_ops(data, layer_names=()):
    """Raises UnsupportedOpError naming every op TFLite Micro lacks, with the layer it comes from.

    Checks the model's builtin ops against the ops TFLite Micro has kernels
    for, then (when tflite-micro is installed) loads it in the real
    interpreter, whose refusal is reported as is.
    """
    details = op_details(data)
    unsupported = [name for name, _ in details if name not in TFLM_BUILTINS]
    if unsupported:
        found = []
        for name in dict.fromkeys(unsupported):
            layers = sorted(
                {_layer_of(outs, layer_names) for op, outs in details if op == name}
            )
            found.append(f"{name} (from {', '.join(layers)})")
        raise UnsupportedOpError(
            "TFLite Micro cannot run: "
            + "; ".join(found)
            + ". Replace those layers or ops before exporting."
        )
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        return
    try:
        runtime.Interpreter.from_bytes(data)
    except Exception as error:  # the runtime's own word
        raise UnsupportedOpError(
            f"The TFLite Micro interpreter refuses the model: {error}"
        ) from error


def _layers_running(graph, kind, layer_names):
    """The layers (sorted names) whose graph holds TensorFlow ops of type `kind`."""
    return sorted(
        {
            _layer_of([op.name], layer_names)
            for op in graph.get_operations()
            if op.type == kind
        }
    )


def converter_error(error, graph, layer_names=()):
    """An UnsupportedOpError from a converter error naming TensorFlow ops with no TFLite builtin."""
    sixteen = sorted(
        set(
            re.findall(r"16x8-bit not yet supported for op: '([A-Z0-9_]+)'", str(error))
        )
    )
    if sixteen:
        found = []
        for name in sixteen:
            kind = "".join(
                part.capitalize() for part in name.split("_")
            )  # GREATER -> Greater
            layers = [
                layer
                for layer in _layers_running(graph, kind, layer_names)
                if layer != "unknown layer"
            ]
            found.append(f"{name} (from {', '.join(layers)})" if layers else name)
        return UnsupportedOpError(
            "int16x8 quantization has no 16-bit kernel for: "
            + "; ".join(found)
            + '. Use quantize="int8" or "float" for this model.'
        )
    kinds = sorted(set(re.findall(r"'tf\.([A-Za-z0-9_]+)' op is neither", str(error))))
    if not kinds:
        return None
    found = []
    for kind in kinds:
        layers = _layers_running(graph, kind, layer_names)
        found.append(f"tf.{kind} (from {', '.join(layers) or 'unknown layer'})")
    return UnsupportedOpError(
        "TFLite has no builtin op for: "
        + "; ".join(found)
        + ". Replace those layers or ops before exporting."
    )
