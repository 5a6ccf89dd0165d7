import keras
from keras import ops

from keras_resetfree.layers.base import ResetFreeCell


class DenseRecurrentCell(ResetFreeCell):
    """Shared weights of the classic cells: `x W + b` and `h U`, `num_gates` blocks.

    The input kernel `W` is `(features, num_gates * units)`, the recurrent
    kernel `U` is `(units, num_gates * units)`; initialised as in Keras
    (Glorot uniform, orthogonal, zeros).
    """

    num_gates = 1

    def __init__(
        self,
        units,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(units) <= 0:
            raise ValueError(
                f"{type(self).__name__}: units must be positive, got {units}."
            )
        self.units = int(units)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.state_size = self.units
        self.output_size = self.units

    def build(self, input_shape):
        super().build(input_shape)
        width = self.num_gates * self.units
        self.kernel = self.add_weight(
            shape=(self.input_dim, width),
            initializer=self.kernel_initializer,
            name="kernel",
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, width),
            initializer=self.recurrent_initializer,
            name="recurrent_kernel",
        )
        self.bias = (
            self.add_weight(shape=(width,), initializer=self.initial_bias, name="bias")
            if self.use_bias
            else None
        )

    def initial_bias(self, shape, dtype=None):
        """Initial value of the input bias; cells override it per gate."""
        return self.bias_initializer(shape, dtype=dtype)

    def project_inputs(self, inputs):
        projected = ops.matmul(inputs, self.kernel)
        return projected + self.bias if self.use_bias else projected

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(
                self.recurrent_initializer
            ),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
