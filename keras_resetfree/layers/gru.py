import keras
import numpy as np
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
class GRUCell(DenseRecurrentCell):
    """Gated recurrent unit cell, the Keras/cuDNN variant (reset gate after `U`).

        z = sigmoid(x W_z + h U_z + b_z)
        r = sigmoid(x W_r + h U_r + b_r)
        c = tanh(x W_h + r * (h U_h + b'_h) + b_h)
        h = z * h + (1 - z) * c

    Gate order in the kernels is `z, r, h`, as in `keras.layers.GRUCell` with
    `reset_after=True`, so weights can be copied between the two.

    Args:
        units: size of the state and of the output.
        activation: the candidate's nonlinearity (`tanh` above).
        recurrent_activation: the gates' nonlinearity (`sigmoid` above).
        use_bias: whether to add the input and recurrent biases.
        kernel_initializer, recurrent_initializer, bias_initializer,
            kernel_regularizer, recurrent_regularizer, bias_regularizer,
            kernel_constraint, recurrent_constraint, bias_constraint: as in
            `keras.layers.GRUCell`.
        dropout, recurrent_dropout, seed: training-time dropout of the inputs
            and of the state entering `h U`, one mask per sequence (see
            `DenseRecurrentCell`).

    Example:

    >>> layer = keras.layers.RNN(keras_resetfree.layers.GRUCell(16))
    """

    num_gates = 3

    def __init__(
        self, units, activation="tanh", recurrent_activation="sigmoid", **kwargs
    ):
        super().__init__(units, **kwargs)
        self.activation = keras.activations.get(activation)
        self.recurrent_activation = keras.activations.get(recurrent_activation)

    def build(self, input_shape):
        super().build(input_shape)
        self.recurrent_bias = self.add_bias(
            3 * self.units, self.bias_initializer, "recurrent_bias"
        )

    def step(self, projected, states, training=False, recurrent_mask=None):
        # Each `quantized` tensor is one the int8 step graph rounds (see
        # ResetFreeCell): identities outside quantization-aware training.
        q = self.quantized
        h = states[0]
        recurrent = self.recurrent_input(h, recurrent_mask)
        if self.use_bias:
            recurrent = recurrent + self.recurrent_bias
        recurrent = q("recurrent_fc", recurrent)
        x_z, x_r, x_h = ops.split(projected, 3, axis=-1)
        h_z, h_r, h_h = ops.split(recurrent, 3, axis=-1)
        z = q("update", self.recurrent_activation(q("update_sum", x_z + h_z)))
        r = q("reset", self.recurrent_activation(q("reset_sum", x_r + h_r)))
        candidate_sum = q("candidate_sum", x_h + q("reset_product", r * h_h))
        candidate = q("candidate", self.activation(candidate_sum))
        kept = q("kept", z * h)
        written = q("written", q("complement", 1.0 - z) * candidate)
        h = self.on_grid(0, kept + written)
        return h, [h]

    def fixed_ranges(self):
        return {
            **self.activation_ranges(("update", "reset"), self.recurrent_activation),
            **self.activation_ranges(("candidate",), self.activation),
        }

    def state_bounds(self):
        # A convex combination of the previous state and the candidate: from
        # the zero state it stays within the candidate's range (gates in [0, 1]).
        bounds = activation_bounds(self.activation)
        if bounds is None or not _gates_in_unit_interval(self.recurrent_activation):
            return [None]
        return [(min(bounds[0], 0.0), max(bounds[1], 0.0))]

    def get_config(self):
        return {
            **super().get_config(),
            "activation": keras.activations.serialize(self.activation),
            "recurrent_activation": keras.activations.serialize(
                self.recurrent_activation
            ),
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class GRU(ResetFreeRNN):
    """Gated recurrent unit layer (Keras's `reset_after=True` equations), per-frame outputs.

    Args:
        units: size of the state and of the output.
        activation, recurrent_activation, use_bias, kernel_initializer,
            recurrent_initializer, bias_initializer, kernel_regularizer,
            recurrent_regularizer, bias_regularizer, kernel_constraint,
            recurrent_constraint, bias_constraint, dropout,
            recurrent_dropout, seed: see `GRUCell`.
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
    >>> y = keras_resetfree.layers.GRU(64)(x)
    """

    cell_class = GRUCell

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
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

    def set_weights(self, weights):
        """Sets the weights from this layer's layout (`kernel, recurrent_kernel, bias,
        recurrent_bias`) or from `keras.layers.GRU(reset_after=True)`'s (`kernel,
        recurrent_kernel, bias` with the two biases stacked as `(2, 3 * units)`)."""
        weights = list(weights)
        if (
            len(weights) == 3
            and np.ndim(weights[2]) == 2
            and np.shape(weights[2])[0] == 2
        ):
            kernel, recurrent_kernel, biases = weights
            weights = [kernel, recurrent_kernel, biases[0], biases[1]]
        super().set_weights(weights)

    def keras_weights(self):
        """The weights in `keras.layers.GRU(reset_after=True)`'s layout, for its
        `set_weights`."""
        kernel, recurrent_kernel, *biases = self.get_weights()
        if not biases:
            return [kernel, recurrent_kernel]
        return [kernel, recurrent_kernel, np.stack(biases)]
