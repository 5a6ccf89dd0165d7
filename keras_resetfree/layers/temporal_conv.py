import keras
from keras import ops

from keras_resetfree.layers.base import (
    PACKAGE,
    ResetFreeCell,
    ResetFreeRNN,
    check_sequences,
    layer_arguments,
)
from keras_resetfree.layers.dense_recurrent_cell import activation_bounds


@keras.saving.register_keras_serializable(package=PACKAGE)
class TemporalConvCell(ResetFreeCell):
    """A causal convolution over time, as a cell whose state is its receptive field.

        y_t = activation([x_{t-k+1}, ..., x_{t-1}, x_t] W + b)

    with `k = kernel_size`: each output sees the current frame and the
    `k - 1` frames before it. The state holds those `k - 1` input frames
    (oldest first, flattened), so the layer runs the same whether a stream
    is fed whole or frame by frame, carries its state across calls like the
    recurrent layers, and exports as one step (a concatenation, a fully
    connected layer and the activation). The zero state stands for silence
    before the stream starts. On a whole sequence it runs as one batched
    matrix product over all frames (`parallel_scan`), not a time loop.

    Args:
        filters: outputs per frame.
        kernel_size: frames each output sees (>= 2; 1 would be a `Dense`).
        activation: the nonlinearity, `"relu"` by default.
        use_bias: whether to add `b`.
        kernel_initializer, bias_initializer: of `W` `(kernel_size *
            features, filters)` and `b`.
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        activation="relu",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        name = type(self).__name__
        if int(filters) <= 0:
            raise ValueError(f"{name}: filters must be positive, got {filters}.")
        if int(kernel_size) < 2:
            raise ValueError(
                f"{name}: kernel_size must be >= 2 frames (1 is a Dense layer), "
                f"got {kernel_size}."
            )
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        # The state's width depends on the features: known once built (the
        # layer then takes it up; Keras's RNN reads an int at construction).
        self.state_size = 0
        self.output_size = self.filters

    def build(self, input_shape):
        super().build(input_shape)
        self.state_size = (self.kernel_size - 1) * self.input_dim
        self.kernel = self.add_weight(
            shape=(self.kernel_size * self.input_dim, self.filters),
            initializer=self.kernel_initializer,
            name="kernel",
        )
        self.bias = (
            self.add_weight(
                shape=(self.filters,), initializer=self.bias_initializer, name="bias"
            )
            if self.use_bias
            else None
        )

    def project_inputs(self, inputs):
        return self.quantized("input", inputs)

    def _outputs(self, windows):
        # Each `quantized` tensor is one the int8 step graph rounds (see
        # ResetFreeCell): identities outside quantization-aware training.
        q = self.quantized
        y = ops.matmul(windows, self.quantized_weight(self.kernel))
        if self.use_bias:
            y = y + self.bias
        return q("activation", self.activation(q("output_fc", y)))

    def step(self, projected, states, training=False):
        window = ops.concatenate([states[0], projected], axis=-1)
        state = self.on_grid(0, window[:, self.input_dim :])
        return self._outputs(window), [state]

    def parallel_scan(self, projected, initial_state):
        """The whole sequence `(batch, frames, features)` at once: `(outputs, [state])`."""
        past = ops.reshape(initial_state[0], (-1, self.kernel_size - 1, self.input_dim))
        frames = ops.concatenate([past, projected], axis=1)
        count = projected.shape[1]
        windows = ops.concatenate(
            [frames[:, i : i + count] for i in range(self.kernel_size)], axis=-1
        )
        state = ops.reshape(
            frames[:, count:], (-1, (self.kernel_size - 1) * self.input_dim)
        )
        return self._outputs(windows), [state]

    def fixed_ranges(self):
        bounds = activation_bounds(self.activation)
        return {} if bounds is None else {"activation": bounds}

    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": serialize(self.kernel_initializer),
            "bias_initializer": serialize(self.bias_initializer),
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class TemporalConv(ResetFreeRNN):
    """A causal convolution over time that streams: per-frame outputs, the past in its state.

    A convolutional front end for a recurrent model (as in kws_streaming's
    CRNN) that keeps the library's contract: the same outputs whole or
    frame by frame, a state the `Streamer` carries and the converter
    exports, and no reset. See `TemporalConvCell`.

    Args:
        filters, kernel_size, activation, use_bias, kernel_initializer,
            bias_initializer: see `TemporalConvCell`.
        return_sequences: per-frame outputs (default) or the last frame only.
        return_state: also return the final state (the last input frames).
        stateful: keep the last state between calls in state variables.
        unroll: unroll the time loop (short, fixed-length sequences; export).

    Call arguments:
        sequences: `(batch, frames, features)` float tensor.
        initial_state: optional list with one `(batch, (kernel_size - 1) *
            features)` tensor.
        training: accepted for API uniformity.

    Output shape: `(batch, frames, filters)` (or `(batch, filters)`),
    followed by the state when `return_state=True`.

    Example:

    >>> x = keras.Input((None, 13))
    >>> y = keras_resetfree.layers.TemporalConv(32, kernel_size=3)(x)
    """

    cell_class = TemporalConvCell

    def build(self, sequences_shape, initial_state_shape=None):
        check_sequences(self.name, sequences_shape, None)
        if not self.cell.built:
            self.cell.build((sequences_shape[0], *sequences_shape[2:]))
            self.cell.built = True
        self.state_size = [self.cell.state_size]
        super().build(sequences_shape, initial_state_shape)

    def __init__(
        self,
        filters,
        kernel_size=3,
        activation="relu",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        return_sequences=True,
        return_state=False,
        stateful=False,
        unroll=False,
        **kwargs,
    ):
        super().__init__(**layer_arguments(locals()))
