import math

import keras
from keras import ops

from keras_resetfree.layers.base import (
    PACKAGE,
    ResetFreeCell,
    ResetFreeRNN,
    decay,
    layer_arguments,
)


@keras.saving.register_keras_serializable(package=PACKAGE)
class LeakyReadoutCell(ResetFreeCell):
    """Non-spiking leaky integrator: `o_t = alpha o_{t-1} + (1 - alpha) (x_t W + b)`.

    Args:
        units: number of outputs (classes).
        tau_initializer: initializer of the trainable per-output time
            constants `tau` (`alpha = exp(-dt / tau)`); default normal(20, 5),
            in steps (Yin et al. 2021's, for 1-ms steps; on 20-ms feature frames
            it averages 0.4 s: the keyword recipe starts it at normal(2, 0.5)).
        dt: the time step.
        kernel_initializer: initializer of `W`.
    """

    def __init__(
        self,
        units,
        tau_initializer=None,
        dt=1.0,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = int(units)
        self.tau_initializer = keras.initializers.get(
            tau_initializer or keras.initializers.RandomNormal(20.0, 5.0)
        )
        self.dt = float(dt)
        if not math.isfinite(self.dt) or self.dt <= 0:
            raise ValueError(f"LeakyReadoutCell: dt must be > 0, got {dt}.")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.state_size = self.units
        self.output_size = self.units

    def build(self, input_shape):
        super().build(input_shape)
        self.kernel = self.add_weight(
            shape=(self.input_dim, self.units),
            initializer=self.kernel_initializer,
            name="kernel",
        )
        self.bias = self.add_weight(
            shape=(self.units,), initializer="zeros", name="bias"
        )
        self.tau = self.add_weight(
            shape=(self.units,), initializer=self.tau_initializer, name="tau"
        )

    def project_inputs(self, inputs):
        return ops.matmul(inputs, self.kernel) + self.bias

    def step(self, projected, states, training=False):
        alpha = decay(self.tau, self.dt)
        o = self.on_grid(0, alpha * states[0] + (1.0 - alpha) * projected)
        return o, [o]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "tau_initializer": keras.initializers.serialize(self.tau_initializer),
            "dt": self.dt,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class LeakyReadout(ResetFreeRNN):
    """Leaky-integrator readout that turns spikes into per-frame logits.

    See `LeakyReadoutCell`. Its state (the integrator) is carried like any
    other recurrent state.

    Args:
        units: number of outputs (classes).
        tau_initializer, dt, kernel_initializer: see `LeakyReadoutCell`.

    Output shape: `(batch, frames, units)`.

    Example:

    >>> logits = keras_resetfree.layers.LeakyReadout(10)(spikes)
    """

    cell_class = LeakyReadoutCell

    def __init__(
        self,
        units,
        tau_initializer=None,
        dt=1.0,
        kernel_initializer="glorot_uniform",
        return_sequences=True,
        return_state=False,
        stateful=False,
        unroll=False,
        **kwargs,
    ):
        super().__init__(**layer_arguments(locals()))
