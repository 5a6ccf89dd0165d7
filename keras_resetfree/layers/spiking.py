import math

import keras

from keras_resetfree.layers import surrogates
from keras_resetfree.layers.base import PACKAGE, ResetFreeRNN, decay, layer_arguments
from keras_resetfree.layers.dense_recurrent_cell import DenseRecurrentCell


@keras.saving.register_keras_serializable(package=PACKAGE)
class LIFCell(DenseRecurrentCell):
    """Recurrent leaky integrate-and-fire cell with soft reset by subtraction.

        I_t = x_t W + s_{t-1} U + b
        alpha = exp(-dt / tau_m)                      (per neuron, trainable tau_m)
        v_t = alpha v_{t-1} + (1 - alpha) I_t - theta s_{t-1}
        s_t = H(v_t - theta)                          (surrogate gradient)

    The subtraction after a spike is the neuron's own membrane reset; the
    library's "reset-free" means the state is never reset between inputs.

    Args:
        units: number of neurons.
        tau_m_initializer: initializer of the membrane time constants (in
            units of `dt`); default normal(20, 5) as in Yin et al. 2021,
            whose steps are 1 ms. On feature frames, scale them to the frame:
            20 frames of 20 ms is a 0.4-s membrane, which smears a spoken word
            (the keyword recipe starts membranes and readout at normal(2, 0.5)
            frames, `recipes.families.SPIKING_TIME_CONSTANT`).
        threshold: firing threshold `theta` (the baseline `b0` for `ALIFCell`).
        dt: the time step.
        surrogate: `"multi_gaussian"` (default), `"fast_sigmoid"` or a
            `keras_resetfree.layers.surrogates.Surrogate`.
        use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
            kernel_regularizer, recurrent_regularizer, bias_regularizer,
            kernel_constraint, recurrent_constraint, bias_constraint: the
            synaptic weights, as in `keras.layers.SimpleRNNCell`.
        dropout, recurrent_dropout, seed: training-time dropout of the inputs
            and of the spikes entering `s U`, one mask per sequence (see
            `DenseRecurrentCell`).

    States: `[v, s]` (membrane, last spikes), each `(batch, units)`.
    """

    def __init__(
        self,
        units,
        tau_m_initializer=None,
        threshold=0.1,
        dt=1.0,
        surrogate="multi_gaussian",
        **kwargs,
    ):
        super().__init__(units, **kwargs)
        self.tau_m_initializer = keras.initializers.get(
            tau_m_initializer or keras.initializers.RandomNormal(20.0, 5.0)
        )
        self.threshold = float(threshold)
        self.dt = float(dt)
        if not math.isfinite(self.threshold) or self.threshold <= 0:
            raise ValueError(
                f"{type(self).__name__}: threshold must be a finite number > 0, got {threshold}."
            )
        if not math.isfinite(self.dt) or self.dt <= 0:
            raise ValueError(f"{type(self).__name__}: dt must be > 0, got {dt}.")
        self.surrogate = surrogates.get(surrogate)
        self.state_size = [self.units, self.units]

    def build(self, input_shape):
        super().build(input_shape)
        self.tau_m = self.add_weight(
            shape=(self.units,), initializer=self.tau_m_initializer, name="tau_m"
        )

    def _integrate(self, projected, v, s, theta, training, recurrent_mask):
        current = projected + self.recurrent_input(s, recurrent_mask)
        alpha = decay(self.tau_m, self.dt)
        v = self.on_grid(0, alpha * v + (1.0 - alpha) * current - theta * s * self.dt)
        return v, self.on_grid(1, self.surrogate(v - theta, training=training))

    def state_bounds(self):
        return [None, (0.0, 1.0)]  # the membrane has no bound; spikes are 0 or 1

    def step(self, projected, states, training=False, recurrent_mask=None):
        v, s = states
        v, s = self._integrate(
            projected, v, s, self.threshold, training, recurrent_mask
        )
        return s, [v, s]

    def get_config(self):
        return {
            **super().get_config(),
            "tau_m_initializer": keras.initializers.serialize(self.tau_m_initializer),
            "threshold": self.threshold,
            "dt": self.dt,
            "surrogate": keras.saving.serialize_keras_object(self.surrogate),
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class ALIFCell(LIFCell):
    """Adaptive LIF cell (Yin, Corradi & Bohte 2021): a spike raises the threshold.

        rho = exp(-dt / tau_adp)                      (per neuron, trainable)
        a_t = rho a_{t-1} + (1 - rho) s_{t-1}
        theta_t = b0 + beta a_t
        v_t = alpha v_{t-1} + (1 - alpha) I_t - theta_t s_{t-1}
        s_t = H(v_t - theta_t)

    Args:
        units: number of neurons.
        beta: strength of the threshold adaptation.
        tau_adp_initializer: initializer of the adaptation time constants;
            default normal(200, 25) as in Yin et al. 2021 (1-ms steps: scale
            it to your frames, see `tau_m_initializer` of `LIFCell`).
        threshold: the baseline threshold `b0`.
        tau_m_initializer, dt, surrogate, use_bias, kernel_initializer,
            recurrent_initializer, bias_initializer, kernel_regularizer,
            recurrent_regularizer, bias_regularizer, kernel_constraint,
            recurrent_constraint, bias_constraint, dropout,
            recurrent_dropout, seed: see `LIFCell`.

    States: `[v, s, a]` (membrane, last spikes, adaptation).
    """

    def __init__(self, units, beta=1.8, tau_adp_initializer=None, **kwargs):
        super().__init__(units, **kwargs)
        self.beta = float(beta)
        self.tau_adp_initializer = keras.initializers.get(
            tau_adp_initializer or keras.initializers.RandomNormal(200.0, 25.0)
        )
        self.state_size = [self.units, self.units, self.units]

    def build(self, input_shape):
        super().build(input_shape)
        self.tau_adp = self.add_weight(
            shape=(self.units,), initializer=self.tau_adp_initializer, name="tau_adp"
        )

    def state_bounds(self):
        # The adaptation is a moving average of spikes: in [0, 1].
        return [None, (0.0, 1.0), (0.0, 1.0)]

    def step(self, projected, states, training=False, recurrent_mask=None):
        v, s, a = states
        rho = decay(self.tau_adp, self.dt)
        a = self.on_grid(2, rho * a + (1.0 - rho) * s)
        theta = self.threshold + self.beta * a
        v, s = self._integrate(projected, v, s, theta, training, recurrent_mask)
        return s, [v, s, a]

    def get_config(self):
        return {
            **super().get_config(),
            "beta": self.beta,
            "tau_adp_initializer": keras.initializers.serialize(
                self.tau_adp_initializer
            ),
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpikingRNN(ResetFreeRNN):
    """Recurrent spiking layer: LIF, or adaptive LIF with `adaptive=True` (default).

    Outputs the spikes of every frame (exactly 0 or 1); gradients flow through
    the surrogate. Follow it with `LeakyReadout` to get per-frame logits.

    Args:
        units: number of neurons.
        adaptive: adaptive LIF (`ALIFCell`) or plain LIF (`LIFCell`).
        beta, tau_adp_initializer: adaptation (`adaptive=True` only; an error
            with `adaptive=False`).
        tau_m_initializer, threshold, dt, surrogate, use_bias,
            kernel_initializer, recurrent_initializer, bias_initializer,
            kernel_regularizer, recurrent_regularizer, bias_regularizer,
            kernel_constraint, recurrent_constraint, bias_constraint, dropout,
            recurrent_dropout, seed: see `LIFCell`.
        return_sequences, return_state, stateful, unroll: as for every layer.

    Call arguments:
        sequences: `(batch, frames, features)` float tensor.
        initial_state: optional `[v, s]` (LIF) or `[v, s, a]` (ALIF).

    Output shape: `(batch, frames, units)` spikes.

    Example:

    >>> x = keras.Input((None, 40))
    >>> spikes = keras_resetfree.layers.SpikingRNN(128)(x)
    >>> logits = keras_resetfree.layers.LeakyReadout(10)(spikes)
    """

    def __init__(
        self,
        units,
        adaptive=True,
        beta=None,
        tau_adp_initializer=None,
        tau_m_initializer=None,
        threshold=0.1,
        dt=1.0,
        surrogate="multi_gaussian",
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
        arguments = layer_arguments(locals())
        self.adaptive = arguments.pop("adaptive")
        self.cell_class = ALIFCell if self.adaptive else LIFCell
        for name in ("beta", "tau_adp_initializer"):
            if arguments[name] is None:
                del arguments[name]  # The cell's default.
            elif not self.adaptive:
                raise ValueError(
                    f"SpikingRNN: {name} sets the threshold adaptation, which "
                    "adaptive=False has not; leave it out or set adaptive=True."
                )
        super().__init__(**arguments)

    def get_config(self):
        return {**super().get_config(), "adaptive": self.adaptive}
