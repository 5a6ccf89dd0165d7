import keras
import numpy as np

from keras_resetfree.layers.base import PACKAGE, ResetFreeRNN, decay, layer_arguments
from keras_resetfree.layers.dense_recurrent_cell import (
    DenseRecurrentCell,
    activation_bounds,
)


@keras.saving.register_keras_serializable(package=PACKAGE)
class VanillaRNNCell(DenseRecurrentCell):
    """Elman cell: `h_t = activation(x_t W + h_{t-1} U + b)`, optionally leaky.

    With `time_constants=(shortest, longest)` every unit integrates with a
    time constant of its own (a leaky, or continuous-time, RNN):

        alpha = exp(-1 / tau)                  (per unit, trainable tau >= 1)
        h_t = alpha h_{t-1} + (1 - alpha) activation(x_t W + h_{t-1} U + b)

    with `tau` (in frames) initialised geometrically spaced from `shortest`
    to `longest`, so that some units follow each frame while others hold
    what they heard for about `longest` frames. A bounded activation keeps
    the state in its range, as in the plain cell.

    Args:
        units: size of the state and of the output.
        activation: the nonlinearity, `"tanh"` by default.
        time_constants: None (the plain Elman cell) or `(shortest, longest)`,
            the range of the units' initial time constants in frames, with
            `1 <= shortest <= longest`.
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

    def __init__(self, units, activation="tanh", time_constants=None, **kwargs):
        super().__init__(units, **kwargs)
        self.activation = keras.activations.get(activation)
        self.time_constants = _checked_time_constants(time_constants)

    def build(self, input_shape):
        super().build(input_shape)
        self.tau = None
        if self.time_constants is not None:
            shortest, longest = self.time_constants
            spaced = np.geomspace(shortest, longest, self.units)
            self.tau = self.add_weight(
                shape=(self.units,),
                initializer=lambda shape, dtype=None: keras.ops.convert_to_tensor(
                    spaced, dtype=dtype
                ),
                name="tau",
            )

    def step(self, projected, states, training=False, recurrent_mask=None):
        # Each `quantized` tensor is one the int8 step graph rounds (see
        # ResetFreeCell): identities outside quantization-aware training.
        q = self.quantized
        h = states[0]
        recurrent = q("recurrent_fc", self.recurrent_input(h, recurrent_mask))
        new = q("activation", self.activation(q("sum", projected + recurrent)))
        if self.tau is not None:
            # The board holds alpha and 1 - alpha as int8 constants too.
            alpha = decay(self.tau, 1.0)
            kept = q("kept", q("decay", alpha) * h)
            new = kept + q("written", q("complement", 1.0 - alpha) * new)
        h = self.on_grid(0, new)
        return h, [h]

    def fixed_ranges(self):
        return self.activation_ranges(("activation",), self.activation)

    def state_bounds(self):
        bounds = activation_bounds(self.activation)
        if bounds is None or self.time_constants is None:
            return [bounds]
        # A convex combination of the previous state and the activation: from
        # the zero state it stays within the activation's range and 0.
        return [(min(bounds[0], 0.0), max(bounds[1], 0.0))]

    def get_config(self):
        return {
            **super().get_config(),
            "activation": keras.activations.serialize(self.activation),
            "time_constants": (
                None if self.time_constants is None else list(self.time_constants)
            ),
        }


def _checked_time_constants(time_constants):
    """`(shortest, longest)` as floats, or None; a clear error for anything else."""
    if time_constants is None:
        return None
    try:
        shortest, longest = (float(t) for t in time_constants)
    except (TypeError, ValueError):
        raise ValueError(
            "time_constants must be None or (shortest, longest) in frames, got "
            f"{time_constants!r}."
        ) from None
    if not 1.0 <= shortest <= longest or not np.isfinite(longest):
        raise ValueError(
            "time_constants must be (shortest, longest) frames with "
            f"1 <= shortest <= longest, got {time_constants!r}."
        )
    return shortest, longest


@keras.saving.register_keras_serializable(package=PACKAGE)
class VanillaRNN(ResetFreeRNN):
    """Elman recurrent layer, `h_t = tanh(x_t W + h_{t-1} U + b)`, per-frame outputs.

    With `time_constants=(shortest, longest)` each unit leaks with a trainable
    time constant of its own (see `VanillaRNNCell`).

    Args:
        units: size of the state and of the output.
        activation, time_constants, use_bias, kernel_initializer, recurrent_initializer,
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
        time_constants=None,
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
