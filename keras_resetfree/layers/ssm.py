import math

import keras
from keras import ops

from keras_resetfree.layers.base import (
    PACKAGE,
    ResetFreeCell,
    ResetFreeRNN,
    layer_arguments,
)

# |lambda| = exp(-max(exp(nu), _MIN_DECAY)) <= exp(-1e-4): strictly inside the
# unit circle for every value of nu, even where exp(nu) underflows.
_MIN_DECAY = 1e-4


@keras.saving.register_keras_serializable(package=PACKAGE)
class RingRadius(keras.initializers.Initializer):
    """Initialises `nu` so that `|lambda| = exp(-exp(nu))` fills a ring.

    `|lambda|^2` is uniform in `[r_min^2, r_max^2]` (Orvieto et al. 2023).
    """

    def __init__(self, r_min=0.5, r_max=0.99, seed=None):
        if not 0.0 < r_min < r_max < 1.0:
            raise ValueError(
                f"RingRadius needs 0 < r_min < r_max < 1, got {r_min}, {r_max}."
            )
        self.r_min, self.r_max, self.seed = r_min, r_max, seed

    def __call__(self, shape, dtype=None):
        u = keras.random.uniform(
            shape, self.r_min**2, self.r_max**2, dtype=dtype, seed=self.seed
        )
        return ops.log(-0.5 * ops.log(u))

    def get_config(self):
        return {"r_min": self.r_min, "r_max": self.r_max, "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class RingPhase(keras.initializers.Initializer):
    """Initialises `theta_log` so that the phase `exp(theta_log)` is uniform in `(0, max_phase]`."""

    def __init__(self, max_phase=math.pi, seed=None):
        if max_phase <= 0:
            raise ValueError(f"RingPhase needs max_phase > 0, got {max_phase}.")
        self.max_phase, self.seed = max_phase, seed

    def __call__(self, shape, dtype=None):
        u = keras.random.uniform(shape, 1e-4, 1.0, dtype=dtype, seed=self.seed)
        return ops.log(self.max_phase * u)

    def get_config(self):
        return {"max_phase": self.max_phase, "seed": self.seed}


def _complex_mul(a_re, a_im, b_re, b_im, rounded=lambda name, x: x):
    """`(a_re + i a_im) (b_re + i b_im)` as `(re, im)`. `rounded(name, x)` puts each
    product and sum on its grid where the int8 step rounds them (`SSMCell.step`
    passes its `quantized`); the identity elsewhere."""
    re = rounded(
        "rotated_re",
        rounded("re_times_re", a_re * b_re) - rounded("im_times_im", a_im * b_im),
    )
    im = rounded(
        "rotated_im",
        rounded("re_times_im", a_re * b_im) + rounded("im_times_re", a_im * b_re),
    )
    return re, im


@keras.saving.register_keras_serializable(package=PACKAGE)
class SSMCell(ResetFreeCell):
    """Diagonal linear state-space cell (LRU / S5 family) in real arithmetic.

    Each of the `state_size` modes is a complex eigenvalue
    `lambda = r exp(i theta)`, stored as a real 2x2 rotation-and-decay block
    acting on the pair `(re, im)`, so the whole step is real multiply-adds
    (int8-friendly). With `u_t = x_t W_in + b_in`:

        s_t = lambda * s_{t-1} + gamma * (u_t B)           (complex, per mode)
        y_t = [Re s_t, Im s_t] C + D * u_t
        out_t = (y_t W_o + b_o) * sigmoid(y_t W_g + b_g)   (GLU)

    with `r = exp(-exp(nu))`, `theta = exp(theta_log)` and the LRU
    normalisation `gamma = sqrt(1 - r^2)`. `r < 1` for every value of `nu`
    (stable by construction, also after training), so the state stays bounded
    by `sqrt((1 + r) / (1 - r))` times the input bound.

    The recurrence is linear, so a whole sequence runs in parallel
    (`parallel_scan`: matrix products within chunks, an associative scan
    across them); streaming uses `step`; they agree.

    Args:
        units: size of the input projection `u` and of the output.
        state_size: number of complex modes (the state holds `2 * state_size`
            reals).
        r_min, r_max: ring initialisation of `|lambda|`.
        max_phase: initial phases are uniform in `(0, max_phase]`.
        kernel_initializer: initializer of `W_in`, `B`, `C`, `W_o`, `W_g`.
        seed: seed of the ring initialisation.

    Example:

    >>> layer = keras.layers.RNN(keras_resetfree.layers.SSMCell(32, 16))
    """

    def __init__(
        self,
        units,
        state_size=64,
        r_min=0.5,
        r_max=0.99,
        max_phase=math.pi,
        kernel_initializer="glorot_uniform",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(units) <= 0 or int(state_size) <= 0:
            raise ValueError(
                f"SSMCell: units and state_size must be positive, got {units}, {state_size}."
            )
        self.units = int(units)
        self.modes = int(state_size)
        self.r_min, self.r_max, self.max_phase = r_min, r_max, max_phase
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.seed = seed
        self.state_size = 2 * self.modes
        self.output_size = self.units

    def build(self, input_shape):
        super().build(input_shape)
        init = self.kernel_initializer
        self.input_kernel = self.add_weight(
            shape=(self.input_dim, self.units), initializer=init, name="input_kernel"
        )
        self.input_bias = self.add_weight(
            shape=(self.units,), initializer="zeros", name="input_bias"
        )
        self.nu = self.add_weight(
            shape=(self.modes,),
            initializer=RingRadius(self.r_min, self.r_max, self.seed),
            name="nu",
        )
        self.theta_log = self.add_weight(
            shape=(self.modes,),
            initializer=RingPhase(self.max_phase, self.seed),
            name="theta_log",
        )
        self.b = self.add_weight(
            shape=(self.units, 2 * self.modes), initializer=init, name="B"
        )
        self.c = self.add_weight(
            shape=(2 * self.modes, self.units), initializer=init, name="C"
        )
        self.d = self.add_weight(shape=(self.units,), initializer="ones", name="D")
        self.glu_kernel = self.add_weight(
            shape=(self.units, 2 * self.units), initializer=init, name="glu_kernel"
        )
        self.glu_bias = self.add_weight(
            shape=(2 * self.units,), initializer="zeros", name="glu_bias"
        )

    def eigenvalues(self):
        """Returns `(lambda_re, lambda_im)`, each `(state_size,)`, `|lambda| < 1`."""
        r = ops.exp(-ops.maximum(ops.exp(self.nu), _MIN_DECAY))
        theta = ops.exp(self.theta_log)
        return r * ops.cos(theta), r * ops.sin(theta)

    def project_inputs(self, inputs):
        # [gamma * Re(u B), gamma * Im(u B), u]: everything that does not
        # depend on the state, computed once for a whole sequence. Each
        # `quantized` tensor is one the int8 step graph rounds (see
        # ResetFreeCell): identities outside quantization-aware training.
        q = self.quantized
        inputs = q("input", inputs)
        u = ops.matmul(inputs, self.quantized_weight(self.input_kernel))
        u = q("input_fc", u + self.input_bias)
        lam_re, lam_im = self.eigenvalues()
        gamma = ops.sqrt(1.0 - (lam_re**2 + lam_im**2))
        # gamma scales B's columns: the converter folds it into B's constant.
        b = self.quantized_weight(self.b * ops.concatenate([gamma, gamma]))
        bu = q("driven", ops.matmul(u, b))
        return ops.concatenate([bu, u], axis=-1)

    def _readout(self, state, u):
        q = self.quantized
        y = q("state_fc", ops.matmul(state, self.quantized_weight(self.c)))
        y = q("readout", y + q("skip", q("skip_weight", self.d) * u))
        z = ops.matmul(y, self.quantized_weight(self.glu_kernel)) + self.glu_bias
        value, gate = ops.split(q("glu_fc", z), 2, axis=-1)
        return q("glu", value * q("gate", ops.sigmoid(gate)))

    def fixed_ranges(self):
        # TFLite's int8 LOGISTIC output: scale 1/256 from 0.
        return {"gate": (0.0, 255.0 / 256.0)}

    def _split(self, projected):
        m = self.modes
        return projected[..., :m], projected[..., m : 2 * m], projected[..., 2 * m :]

    def step(self, projected, states, training=False):
        bu_re, bu_im, u = self._split(projected)
        m = self.modes
        s_re, s_im = states[0][..., :m], states[0][..., m:]
        q = self.quantized
        lam_re, lam_im = self.eigenvalues()
        lam_re, lam_im = q("lambda_re", lam_re), q("lambda_im", lam_im)
        # lambda * s, each product and sum as the int8 step rounds it.
        rotated_re, rotated_im = _complex_mul(lam_re, lam_im, s_re, s_im, q)
        # Both halves on the state's grid before they are joined (one scale).
        state = ops.concatenate(
            [self.on_grid(0, rotated_re + bu_re), self.on_grid(0, rotated_im + bu_im)],
            axis=-1,
        )
        return self._readout(state, u), [state]

    def _powers(self, exponents):
        """`lambda ** k` for a float tensor of exponents `k`, as `(re, im)` of shape `k.shape + (modes,)`.

        Closed form `exp(-k d) (cos k theta, sin k theta)`: exact for any
        `k`, no repeated products.
        """
        decay = ops.maximum(ops.exp(self.nu), _MIN_DECAY)
        theta = ops.exp(self.theta_log)
        k = ops.expand_dims(exponents, -1)
        magnitude = ops.exp(-k * decay)
        return magnitude * ops.cos(k * theta), magnitude * ops.sin(k * theta)

    def parallel_scan(self, projected, initial_state, chunk=32):
        """Runs a whole projected sequence `(batch, frames, ...)` in parallel.

        A chunked scan: the sequence is cut into chunks of `chunk` frames.
        Inside a chunk every state is a causal sum of the chunk's inputs
        weighted by powers of lambda, `z_k = sum_(j <= k) lambda^(k-j) b_j`:
        one matrix product (`einsum`) with a `(chunk, chunk)` kernel of real
        2x2 rotation blocks per mode. Across chunks, the states at the chunk
        ends follow `H_c = lambda^chunk H_(c-1) + z_(c, last)`, run with
        `keras.ops.associative_scan`; each chunk then adds
        `lambda^(k+1) H_(c-1)`, the contribution of its incoming state. The
        same numbers as the step path; dense products instead of the
        2 log2(frames) memory-bound passes of a scan over every frame, and
        far fewer steps than a loop (`benchmarks/bench_layers.py`).

        Returns `(outputs, [final_state])`.
        """
        m = self.modes
        bu, u = projected[..., : 2 * m], projected[..., 2 * m :]
        frames = bu.shape[1]
        chunks = -(-frames // chunk)
        pad = chunks * chunk - frames
        if pad:
            bu = ops.pad(bu, [[0, 0], [0, pad], [0, 0]])
        b = ops.reshape(bu, (-1, chunks, chunk, 2, m))  # [..., (re, im), mode]

        # Within chunks: kernel[k, j, p, q, m] maps (re, im)_q of b_j to
        # (re, im)_p of z_k: lambda^(k-j) as [[re, -im], [im, re]], 0 for j > k.
        k = ops.arange(chunk, dtype=self.compute_dtype)
        lag = ops.expand_dims(k, 1) - ops.expand_dims(k, 0)
        causal = ops.expand_dims(ops.cast(lag >= 0, self.compute_dtype), -1)
        t_re, t_im = self._powers(ops.maximum(lag, 0.0))
        t_re, t_im = t_re * causal, t_im * causal
        kernel = ops.stack(
            [ops.stack([t_re, -t_im], axis=2), ops.stack([t_im, t_re], axis=2)], axis=2
        )
        z = ops.einsum("kjpqm,bcjqm->bckpm", kernel, b)  # (batch, chunks, chunk, 2, m)

        # Across chunks: H_c from the chunk ends and the initial state.
        e_re, e_im = z[:, :, -1, 0], z[:, :, -1, 1]  # (batch, chunks, modes)
        l_re, l_im = self._powers(
            ops.convert_to_tensor(float(chunk), self.compute_dtype)
        )
        a_re = ops.broadcast_to(l_re, ops.shape(e_re))
        a_im = ops.broadcast_to(l_im, ops.shape(e_im))

        def combine(earlier, later):
            # (A1, x1) then (A2, x2) = (A2 A1, A2 x1 + x2), complex per mode.
            e_are, e_aim, e_xre, e_xim = earlier
            l_are, l_aim, l_xre, l_xim = later
            are, aim = _complex_mul(l_are, l_aim, e_are, e_aim)
            xre, xim = _complex_mul(l_are, l_aim, e_xre, e_xim)
            return are, aim, xre + l_xre, xim + l_xim

        p_re, p_im, x_re, x_im = ops.associative_scan(
            combine, (a_re, a_im, e_re, e_im), axis=1
        )
        shape = ops.shape(e_re)  # TensorFlow's scan drops static shapes
        p_re, p_im, x_re, x_im = (
            ops.reshape(t, shape) for t in (p_re, p_im, x_re, x_im)
        )
        h = ops.reshape(initial_state[0], (-1, 1, 2, m))
        i_re, i_im = _complex_mul(p_re, p_im, h[:, :, 0], h[:, :, 1])
        ends = ops.stack(
            [x_re + i_re, x_im + i_im], axis=2
        )  # H_c: (batch, chunks, 2, m)
        incoming = ops.concatenate(
            [h, ends[:, :-1]], axis=1
        )  # H_(c-1), H_(-1) = initial

        q_re, q_im = self._powers(k + 1.0)  # lambda^(k+1): (chunk, modes)
        c_re, c_im = _complex_mul(
            q_re, q_im, incoming[:, :, None, 0], incoming[:, :, None, 1]
        )
        states = z + ops.stack([c_re, c_im], axis=3)
        states = ops.reshape(states, (-1, chunks * chunk, 2 * m))[:, :frames]
        return self._readout(states, u), [states[:, -1]]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "state_size": self.modes,
            "r_min": self.r_min,
            "r_max": self.r_max,
            "max_phase": self.max_phase,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class SSM(ResetFreeRNN):
    """Diagonal linear state-space layer (LRU / S5 style), stable by construction.

    See `SSMCell` for the equations. Full sequences run as a chunked
    parallel scan (`SSMCell.parallel_scan`: one matrix product per 32-frame
    chunk, `keras.ops.associative_scan` across chunks) unless `scan=False`;
    the streaming step gives the same numbers.

    Args:
        units: size of the input projection and of the output.
        state_size: number of complex modes (`2 * state_size` real states).
        r_min, r_max, max_phase, kernel_initializer, seed: see `SSMCell`.
        scan: run full sequences as a parallel scan (default) or step by step.
        return_sequences: per-frame outputs (default) or the last frame only.
        return_state: also return the final state.
        stateful: keep the last state between calls in state variables.
        unroll: unroll the time loop (implies the step path; export).

    Call arguments:
        sequences: `(batch, frames, features)` float tensor.
        initial_state: optional list with one `(batch, 2 * state_size)` tensor.

    Output shape: `(batch, frames, units)` (or `(batch, units)`).

    Example:

    >>> x = keras.Input((None, 40))
    >>> y = keras_resetfree.layers.SSM(64, state_size=32)(x)
    """

    cell_class = SSMCell

    def __init__(
        self,
        units,
        state_size=64,
        r_min=0.5,
        r_max=0.99,
        max_phase=math.pi,
        kernel_initializer="glorot_uniform",
        seed=None,
        scan=True,
        return_sequences=True,
        return_state=False,
        stateful=False,
        unroll=False,
        **kwargs,
    ):
        arguments = layer_arguments(locals())
        self.scan = arguments.pop("scan")
        super().__init__(**arguments)

    def get_config(self):
        return {**super().get_config(), "scan": self.scan}
