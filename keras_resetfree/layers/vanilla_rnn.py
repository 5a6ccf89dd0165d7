import keras

from keras_resetfree.layers.base import PACKAGE, ResetFreeRNN, layer_arguments
from keras_resetfree.layers.dense_recurrent_cell import (
    DenseRecurrentCell,
    activation_bounds,
)


@keras.saving.register_keras_serializable(package=PACKAGE)
class VanillaRNNCell(DenseRecurrentCell):
    """Elman cell: `h_t = activation(x_t W + h_{t-1} U + b)`.

    Args:
        units: size of the state and of the output.
        activation: the nonlinearity, `"tanh"` by default.
        use_bias: whether to add `b`.
        kernel_initializer, recurrent_initializer, bias_initializer,
            kernel_regularizer, recurrent_regularizer, bias_regularizer,
            kernel_constraint, recurrent_constraint, bias_constraint: as in
            `keras.layers.SimpleRNNCell` (Glorot uniform, orthogonal, zeros).
        dropout, recurrent_dropout, seed: training-time dropout of the inputs
            and of `h` entering `h U`, one mask per sequence (see
            `DenseRecurrentCell`).

    Example:

    >>> layer = keras.layers.RNN(keras_resetfree.layers.VanillaRNNCell(16))
    """

    def __init__(self, units, activation="tanh", **kwargs):
        super().__init__(units, **kwargs)
        self.activation = keras.activations.get(activation)

    def step(self, projected, states, training=False, recurrent_mask=None):
        # Each `quantized` tensor is one the int8 step graph rounds (see
        # ResetFreeCell): identities outside quantization-aware training.
        q = self.quantized
        recurrent = q("recurrent_fc", self.recurrent_input(states[0], recurrent_mask))
        h = q("activation", self.activation(q("sum", projected + recurrent)))
        h = self.on_grid(0, h)
        return h, [h]

    def fixed_ranges(self):
        return self.activation_ranges(("activation",), self.activation)

    def state_bounds(self):
        return [activation_bounds(self.activation)]

    def get_config(self):
        return {
            **super().get_config(),
            "activation": keras.activations.serialize(self.activation),
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class VanillaRNN(ResetFreeRNN):
    """Elman recurrent layer, `h_t = tanh(x_t W + h_{t-1} U + b)`, per-frame outputs.

    Args:
        units: size of the state and of the output.
        activation, use_bias, kernel_initializer, recurrent_initializer,
            bias_initializer, kernel_regularizer, recurrent_regularizer,
            bias_regularizer, kernel_constraint, recurrent_constraint,
            bias_constraint, dropout, recurrent_dropout, seed: see
            `VanillaRNNCell`.
        return_sequences: per-frame outputs (default) or the last frame only.
        return_state: also return the final state.
        stateful: keep the last state between calls in state variables.
        unroll: unroll the time loop (short, fixed-length sequences; export).

    Call arguments:
        sequences: `(batch, frames, features)` float tensor.
        initial_state: optional list with one `(batch, units)` tensor.
        training: accepted for API uniformity.

    Output shape: `(batch, frames, units)` (or `(batch, units)`), followed by
    the state when `return_state=True`.

    Example:

    >>> x = keras.Input((None, 40))
    >>> y = keras_resetfree.layers.VanillaRNN(64)(x)
    """

    cell_class = VanillaRNNCell

    def __init__(
        self,
        units,
        activation="tanh",
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
