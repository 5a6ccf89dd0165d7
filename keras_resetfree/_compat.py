"""Every private Keras and TFLite call the library makes, in one place.

These are not public APIs: a Keras or TensorFlow release may change them.
The test suite runs them on keras 3.15.1 and tensorflow 2.21.0 (what `make
install` resolves today; `pyproject.toml` says so beside the requirements);
when an upgrade breaks one, it breaks here.
"""

# Keras's backend-dispatched time loop (`keras.layers.RNN` uses it too): a
# Python loop on torch, `lax.scan` on JAX, `tf.while_loop` on TensorFlow.
from keras.src.backend import rnn as backend_rnn

# The base of preprocessing layers that run inside tf.data on any backend.
from keras.src.layers.preprocessing.data_layer import DataLayer

__all__ = [
    "DataLayer",
    "backend_rnn",
    "call_has_training_arg",
    "enable_variable_quantization",
    "flat_layers",
    "quantize_selectively",
    "run_through_graph",
    "tflite_ops",
]


def flat_layers(model):
    """Every layer of `model`, nested models and the cells inside layers included."""
    return list(model._flatten_layers(include_self=False))


def call_has_training_arg(layer):
    """Whether `layer.call` takes `training`."""
    return getattr(layer, "_call_has_training_arg", False)


def run_through_graph(model, inputs, operation_fn):
    """Runs a Sequential or functional `model`'s graph on `inputs`, each operation through
    `operation_fn(op) -> callable`; None when the model has no graph (subclassed)."""
    graph = getattr(model, "_functional", None) or model
    if not hasattr(graph, "_run_through_graph"):
        return None
    return graph._run_through_graph(inputs, operation_fn=operation_fn)


def tflite_ops(interpreter):
    """`[{"op_name", "inputs", "outputs", ...}]` of a `tf.lite.Interpreter`'s main graph."""
    return interpreter._get_ops_details()


def enable_variable_quantization(converter):
    """Quantizes resource variables (the recurrent state) with the rest of an int8 model;
    without it the state stays float32 with QUANTIZE / DEQUANTIZE around it."""
    converter._experimental_variable_quantization = True


def disable_per_channel(converter):
    """One scale per weight tensor instead of one per output channel."""
    converter._experimental_disable_per_channel = True


def quantize_selectively(converter, float_ops):
    """What `converter` (set up for int8) makes, with the ops of the types in `float_ops`
    left in float: the calibration pass, then the quantizer's denylist (as TFLite's
    QuantizationDebugger does). Float32 input and output."""
    from tensorflow.lite.python import convert

    converter._experimental_calibrate_only = True
    calibrated = converter.convert()
    return convert.mlir_quantize(
        calibrated,
        disable_per_channel=converter._experimental_disable_per_channel,
        denylisted_ops=list(float_ops),
        enable_variable_quantization=converter._experimental_variable_quantization,
    )
