import keras
from keras import ops

from keras_resetfree.layers.base import ResetFreeCell

# The range of a bounded nonlinearity, which bounds a state made of it. tanh
# and sigmoid take the fixed grids of TFLite's int8 TANH (steps of 1/128 from
# -1) and LOGISTIC (1/256 from 0), so that a state quantized on that range
# needs no requantization where the board computes it.
_ACTIVATION_BOUNDS = {
    "tanh": (-1.0, 127.0 / 128.0),
    "sigmoid": (0.0, 255.0 / 256.0),
    "softsign": (-1.0, 1.0),
}


def activation_bounds(activation):
    """`(low, high)` of a Keras activation's outputs, or None when unbounded."""
    return _ACTIVATION_BOUNDS.get(keras.activations.serialize(activation))


def gates_in_unit_interval(activation):
    """Whether a gate activation stays in [0, 1] (so a gated mix stays in range)."""
    bounds = activation_bounds(activation)
    return bounds is not None and bounds[0] >= 0.0 and bounds[1] <= 1.0


class DenseRecurrentCell(ResetFreeCell):
    """Shared weights of the classic cells: `x W + b` and `h U`, `num_gates` blocks.

    The input kernel `W` is `(features, num_gates * units)`, the recurrent
    kernel `U` is `(units, num_gates * units)`; initialised as in Keras
    (Glorot uniform, orthogonal, zeros), with Keras's regularizer,
    constraint and dropout options.

    Dropout, as in Keras's layers, draws one mask per sequence and keeps it
    at every frame: `dropout` on the inputs, `recurrent_dropout` on the state
    where it enters `h U` (one mask for all gates; the state itself is
    carried undropped). Both act in training only.
    """

    num_gates = 1

    def __init__(
        self,
        units,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(units) <= 0:
            raise ValueError(
                f"{type(self).__name__}: units must be positive, got {units}."
            )
        for name, rate in (
            ("dropout", dropout),
            ("recurrent_dropout", recurrent_dropout),
        ):
            if not 0.0 <= float(rate) < 1.0:
                raise ValueError(
                    f"{type(self).__name__}: {name} must be in [0, 1), got {rate}."
                )
        self.units = int(units)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.seed = seed
        # Only cells that drop out own a seed generator (a state variable), so
        # the weights of every other cell are those of Keras's.
        self.seed_generator = (
            keras.random.SeedGenerator(seed)
            if self.dropout or self.recurrent_dropout
            else None
        )
        self.state_size = self.units
        self.output_size = self.units

    def build(self, input_shape):
        super().build(input_shape)
        width = self.num_gates * self.units
        self.kernel = self.add_weight(
            shape=(self.input_dim, width),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
            name="kernel",
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, width),
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
            name="recurrent_kernel",
        )
        self.bias = self.add_bias(width, self.initial_bias, "bias")

    def add_bias(self, width, initializer, name):
        """A bias of `width` with the cell's regularizer and constraint (None
        when `use_bias=False`)."""
        if not self.use_bias:
            return None
        return self.add_weight(
            shape=(width,),
            initializer=initializer,
            regularizer=self.bias_regularizer,
            constraint=self.bias_constraint,
            name=name,
        )

    def initial_bias(self, shape, dtype=None):
        """Initial value of the input bias; cells override it per gate."""
        return self.bias_initializer(shape, dtype=dtype)

    def project_inputs(self, inputs):
        inputs = self.quantized("input", inputs)
        projected = ops.matmul(inputs, self.quantized_weight(self.kernel))
        if self.use_bias:
            projected = projected + self.bias
        return self.quantized("input_fc", projected)

    def recurrent_input(self, h, recurrent_mask=None):
        """`h U`, with the recurrent dropout mask applied to `h` in training."""
        if recurrent_mask is not None:
            h = h * recurrent_mask
        return ops.matmul(h, self.quantized_weight(self.recurrent_kernel))

    def activation_ranges(self, names, activation):
        """`{name: bounds}` for the tensors `names` if `activation` is bounded."""
        bounds = activation_bounds(activation)
        return {} if bounds is None else dict.fromkeys(names, bounds)

    def dropout_masks(self, sequences, states):
        def mask(like, rate):
            if not rate:
                return None
            return keras.random.dropout(
                ops.ones_like(like), rate=rate, seed=self.seed_generator
            )

        return (
            mask(sequences[:, 0, :], self.dropout),
            mask(states[0], self.recurrent_dropout),
        )

    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        return {
            **super().get_config(),
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": serialize(self.kernel_initializer),
            "recurrent_initializer": serialize(self.recurrent_initializer),
            "bias_initializer": serialize(self.bias_initializer),
            "kernel_regularizer": serialize(self.kernel_regularizer),
            "recurrent_regularizer": serialize(self.recurrent_regularizer),
            "bias_regularizer": serialize(self.bias_regularizer),
            "kernel_constraint": serialize(self.kernel_constraint),
            "recurrent_constraint": serialize(self.recurrent_constraint),
            "bias_constraint": serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
