import keras
from keras import ops

from keras_resetfree.layers.base import PACKAGE, ResetFreeRNN, layer_arguments
from keras_resetfree.layers.dense_recurrent_cell import (
    DenseRecurrentCell,
    activation_bounds,
)
from keras_resetfree.layers.dense_recurrent_cell import (
    gates_in_unit_interval as _gates_in_unit_interval,
)


@keras.saving.register_keras_serializable(package=PACKAGE)
class LSTMCell(DenseRecurrentCell):
    """Long short-term memory cell, gate order `i, f, c, o` as in `keras.layers.LSTMCell`.

        i, f, o = sigmoid(x W_{i,f,o} + h U_{i,f,o} + b_{i,f,o})
        c = f * c + i * tanh(x W_c + h U_c + b_c)
        h = o * tanh(c)

    Args:
        units: size of the state and of the output.
        activation: the nonlinearity of the cell input and output (`tanh`
            above).
        recurrent_activation: the gates' nonlinearity (`sigmoid` above).
        use_bias: whether to add `b`.
        unit_forget_bias: start the forget-gate bias at 1 (Jozefowicz et al.).
        kernel_initializer, recurrent_initializer, bias_initializer,
            kernel_regularizer, recurrent_regularizer, bias_regularizer,
            kernel_constraint, recurrent_constraint, bias_constraint: as in
            `keras.layers.LSTMCell`.
        dropout, recurrent_dropout, seed: training-time dropout of the inputs
            and of `h` entering `h U`, one mask per sequence (see
            `DenseRecurrentCell`).

    States: `[h, c]`, each `(batch, units)`.

    Example:

    >>> layer = keras.layers.RNN(keras_resetfree.layers.LSTMCell(16))
    """

    num_gates = 4

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        unit_forget_bias=True,
        **kwargs,
    ):
        super().__init__(units, **kwargs)
        self.activation = keras.activations.get(activation)
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.unit_forget_bias = unit_forget_bias
        self.state_size = [self.units, self.units]

    def initial_bias(self, shape, dtype=None):
        if not self.unit_forget_bias:
            return super().initial_bias(shape, dtype=dtype)
        units = self.units
        return ops.concatenate(
            [
                self.bias_initializer((units,), dtype=dtype),
                ops.ones((units,), dtype=dtype),
                self.bias_initializer((2 * units,), dtype=dtype),
            ]
        )

    def step(self, projected, states, training=False, recurrent_mask=None):
        # Each `quantized` tensor is one the int8 step graph rounds (see
        # ResetFreeCell): identities outside quantization-aware training.
        q = self.quantized
        h, c = states
        recurrent = q("recurrent_fc", self.recurrent_input(h, recurrent_mask))
        z = q("sum", projected + recurrent)
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        gate = self.recurrent_activation
        kept = q("kept", q("forget_gate", gate(z_f)) * c)
        written = q("input_gate", gate(z_i)) * q("candidate", self.activation(z_c))
        c = self.on_grid(1, kept + q("written", written))
        output = q("cell_output", self.activation(c))
        h = self.on_grid(0, q("output_gate", gate(z_o)) * output)
        return h, [h, c]

    def fixed_ranges(self):
        gates = ("input_gate", "forget_gate", "output_gate")
        return {
            **self.activation_ranges(gates, self.recurrent_activation),
            **self.activation_ranges(("candidate", "cell_output"), self.activation),
        }

    def state_bounds(self):
        # h = o * activation(c) with o in [0, 1]; the cell state c has no bound.
        bounds = activation_bounds(self.activation)
        if bounds is None or not _gates_in_unit_interval(self.recurrent_activation):
            return [None, None]
        return [(min(bounds[0], 0.0), max(bounds[1], 0.0)), None]

    def get_config(self):
        return {
            **super().get_config(),
            "activation": keras.activations.serialize(self.activation),
            "recurrent_activation": keras.activations.serialize(
                self.recurrent_activation
            ),
            "unit_forget_bias": self.unit_forget_bias,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class LSTM(ResetFreeRNN):
    """Long short-term memory layer, per-frame outputs.

    Args:
        units: size of the state and of the output.
        activation, recurrent_activation, use_bias, unit_forget_bias,
            kernel_initializer, recurrent_initializer, bias_initializer,
            kernel_regularizer, recurrent_regularizer, bias_regularizer,
            kernel_constraint, recurrent_constraint, bias_constraint, dropout,
            recurrent_dropout, seed: see `LSTMCell`.
        return_sequences: per-frame outputs (default) or the last frame only.
        return_state: also return the final states `h, c`.
        stateful: keep the last state between calls in state variables.
        unroll: unroll the time loop (short, fixed-length sequences; export).

    Call arguments:
        sequences: `(batch, frames, features)` float tensor.
        initial_state: optional list `[h, c]` of `(batch, units)` tensors.
        training: accepted for API uniformity.

    Output shape: `(batch, frames, units)` (or `(batch, units)`), followed by
    `h, c` when `return_state=True`.

    Example:

    >>> x = keras.Input((None, 40))
    >>> y = keras_resetfree.layers.LSTM(64)(x)
    """

    cell_class = LSTMCell

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        unit_forget_bias=True,
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
        return_sequences=True,
        return_state=False,
        stateful=False,
        unroll=False,
        **kwargs,
    ):
        super().__init__(**layer_arguments(locals()))
