"""The stateful machinery shared by every cell family.

A cell only says how one step goes (`ResetFreeCell`); `ResetFreeRNN` runs it
over a sequence, carries and resets its state, and exposes the pure
`stream_call` used by `keras_resetfree.Streamer`.
"""

import inspect

import keras
from keras import ops
from keras.quantizers import fake_quant_with_min_max_vars

# The time loop of keras.layers.RNN itself (tf.while_loop, lax.scan or a torch
# loop): not in keras.ops, but the layer we subclass relies on it too.
from keras_resetfree._compat import backend_rnn
from keras_resetfree.layers.quantized import (
    FakeQuantized,
    checked_tensor_ranges,
    checked_weight_quantization,
    tensor_ranges_config,
)

PACKAGE = "keras_resetfree"


def check_sequences(layer_name, shape, dtype, input_dim=None):
    """Raises a ValueError naming the layer if `shape`/`dtype` is no sequence.

    Args:
        layer_name: name used in the error message.
        shape: the received shape (a tuple, entries may be None).
        dtype: the received dtype.
        input_dim: the expected feature size, or None when not known yet.
    """
    if getattr(shape, "rank", 0) is None:
        return  # Unknown rank inside a traced graph: nothing to check statically.
    shape = tuple(shape)
    expected = f"(batch, frames, {input_dim if input_dim is not None else 'features'})"
    if len(shape) != 3:
        raise ValueError(
            f"Layer '{layer_name}' expects a sequence of rank 3 {expected}; "
            f"received an input of rank {len(shape)} with shape {shape}."
        )
    if input_dim is not None and shape[-1] is not None and shape[-1] != input_dim:
        raise ValueError(
            f"Layer '{layer_name}' expects input shape {expected}; received "
            f"shape {shape} (feature size {shape[-1]}, expected {input_dim})."
        )
    if dtype is not None and "float" not in keras.backend.standardize_dtype(dtype):
        raise ValueError(
            f"Layer '{layer_name}' expects floating-point input {expected}; "
            f"received dtype {keras.backend.standardize_dtype(dtype)} with "
            f"shape {shape}. Cast it (and scale integer PCM) first."
        )


def decay(tau, dt):
    """`exp(-dt / tau)` for trainable time constants, with `tau` kept >= `dt`.

    The clamp keeps the decay in [exp(-1), 1): a leaky, stable integrator
    whatever value training gives `tau`.
    """
    return ops.exp(-dt / ops.maximum(tau, dt))


def layer_arguments(arguments):
    """A layer constructor's arguments from its `locals()`, `**kwargs` merged in.

    Each layer spells its arguments out (so `help()` and editors show them)
    and hands them on with `super().__init__(**layer_arguments(locals()))`.
    """
    arguments = {
        k: v for k, v in arguments.items() if k not in ("self", "__class__", "kwargs")
    } | arguments.get("kwargs", {})
    return arguments


def _cell_arguments(cell_class):
    """Names of the constructor arguments of a cell class and its cell bases."""
    names = set()
    for klass in cell_class.__mro__:
        if issubclass(klass, ResetFreeCell) and "__init__" in vars(klass):
            names.update(inspect.signature(klass.__init__).parameters)
    return names - {"self", "kwargs"}


class ResetFreeCell(FakeQuantized, keras.layers.Layer):
    """Base class of the cells: one step of a recurrence.

    A cell splits its step in two so that the layer can hoist the part that
    does not depend on the state out of the time loop:

    - `project_inputs(inputs)`: the state-free part (usually `x W + b`), applied
      to a whole sequence `(batch, frames, features)` at once, or to one frame.
    - `step(projected, states, training)`: the recurrence proper.

    `call(inputs, states)` chains both, so every cell also works inside
    `keras.layers.RNN`. Subclasses set `state_size` and `output_size`.

    For quantization-aware training (`keras_resetfree.export.quantization_aware`)
    a cell passes its weight matrices through `quantized_weight`, each tensor
    that the exported step quantizes through `quantized(name, value)`, and
    each new state through `on_grid`; all three are identities until the
    layer's ranges are set (`layers.quantized`).
    """

    def project_inputs(self, inputs):
        raise NotImplementedError

    def step(self, projected, states, training=False):
        raise NotImplementedError

    def call(self, inputs, states, training=False):
        return self.step(self.project_inputs(inputs), states, training=training)

    def dropout_masks(self, sequences, states):
        """Per-sequence dropout masks `(input_mask, recurrent_mask)` in training.

        Each is None where the cell has no such dropout; `input_mask` is
        `(batch, features)`, `recurrent_mask` is `(batch, units)`.
        """
        return None, None

    #: `(low, high)` of each state tensor's 8-bit grid, or None (float state);
    #: set by the layer from its `state_ranges`.
    state_ranges = None

    def on_grid(self, index, value):
        """State `index`'s new `value` on its 8-bit grid when `state_ranges` is set
        (as is otherwise). A cell calls it where it computes each state, before
        any other use, so that the step uses the state as an int8 board holds
        it and the converter sees one range for it."""
        if self.state_ranges is None:
            return value
        low, high = self.state_ranges[index]
        return fake_quant_with_min_max_vars(value, low, high, num_bits=8)

    def state_bounds(self):
        """`(low, high)` that each state tensor can never leave, or None where
        it has no bound by construction; used to quantize the state."""
        return [None] * len(self._state_sizes())

    def _state_sizes(self):
        return (
            list(self.state_size)
            if isinstance(self.state_size, (list, tuple))
            else [self.state_size]
        )

    def get_initial_state(self, batch_size=None):
        return [
            ops.zeros((batch_size, size), dtype=self.compute_dtype)
            for size in self._state_sizes()
        ]

    def build(self, input_shape):
        self.input_dim = int(input_shape[-1])


class ResetFreeRNN(keras.layers.RNN):
    """Base class of the recurrent layers: runs a `ResetFreeCell` over time.

    It differs from `keras.layers.RNN` in what streaming needs:

    - per-frame outputs by default (`return_sequences=True`);
    - on PyTorch, the input projection of the cell is computed once for the
      whole sequence, outside the time loop (where that is faster);
    - a cell with a `parallel_scan` method (a linear recurrence) runs as a
      parallel scan over the sequence unless `scan=False`;
    - `reset_state()` returns to the cell's initial state, not to zeros;
    - `stream_call(x, states)` is a pure function `(outputs, new_states)`
      whatever `stateful` is, which `keras_resetfree.Streamer` uses to carry
      the state explicitly on every backend;
    - inputs are checked: rank 3, the built feature size, a float dtype;
    - `state_ranges` (set by `keras_resetfree.export.quantization_aware`, a
      `(low, high)` per state tensor) fake-quantizes the state to 8 bits on
      read and on write at every step, as an int8 board holds it: in
      training (straight-through gradients), in streaming, and in the
      exported graph, where the converter takes these ranges.
      `tensor_ranges` (`{name: (low, high)}`) does the same for the cell's
      other quantized tensors (its matmul outputs, sums, products and gate
      activations, by the names the cell gives them) and
      `weight_quantization` (`"per_tensor"` or `"per_channel"`) rounds its
      weight matrices to TFLite's symmetric int8 grid.

    Subclasses build their cell from their constructor arguments and list
    them in `get_config` through the cell.
    """

    #: The `ResetFreeCell` subclass that the layer builds from its arguments.
    cell_class = None

    def __init__(
        self,
        return_sequences=True,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        state_ranges=None,
        tensor_ranges=None,
        weight_quantization=None,
        **kwargs,
    ):
        # Arguments named in the cell's constructor go to the cell, the rest
        # (name, dtype, trainable, ...) to the layer: each layer is then just
        # its cell class and a docstring.
        cell_kwargs = {
            k: kwargs.pop(k)
            for k in list(kwargs)
            if k in _cell_arguments(self.cell_class)
        }
        kwargs.pop("zero_output_for_mask", None)
        cell = self.cell_class(
            dtype=kwargs.get("dtype"),
            name=f"{self.cell_class.__name__.lower()}",
            **cell_kwargs,
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            **kwargs,
        )
        self.set_quantization(state_ranges, tensor_ranges, weight_quantization)

    def set_quantization(
        self, state_ranges=None, tensor_ranges=None, weight_quantization=None
    ):
        """Sets (None: clears) the 8-bit grids of the state, the cell's named tensors and
        its weights (see the class docstring)."""
        self.state_ranges = self._checked_state_ranges(state_ranges)
        self.tensor_ranges = checked_tensor_ranges(tensor_ranges, self.name)
        self.weight_quantization = checked_weight_quantization(
            weight_quantization, self.name
        )
        self.cell.state_ranges = self.state_ranges
        self.cell.tensor_ranges = self.tensor_ranges
        self.cell.weight_quantization = self.weight_quantization

    def _checked_state_ranges(self, ranges):
        if ranges is None:
            return None
        ranges = [tuple(float(v) for v in pair) for pair in ranges]
        expected = len(self.cell._state_sizes())
        if len(ranges) != expected or any(
            len(pair) != 2 or not pair[0] < pair[1] for pair in ranges
        ):
            raise ValueError(
                f"Layer '{self.name}': state_ranges needs one (low, high) with low < high "
                f"for each of its {expected} state tensor(s); got {ranges}."
            )
        return ranges

    def _quantized(self, states):
        """The states on the cell's 8-bit grid (unchanged without `state_ranges`):
        a state handed in from outside (the initial state, or one the caller
        set) is rounded as the board would hold it."""
        return [self.cell.on_grid(i, state) for i, state in enumerate(states)]

    def build(self, sequences_shape, initial_state_shape=None):
        check_sequences(self.name, sequences_shape, None)
        super().build(sequences_shape, initial_state_shape)

    def _check_inputs(self, sequences):
        check_sequences(
            self.name,
            sequences.shape,
            sequences.dtype,
            getattr(self.cell, "input_dim", None),
        )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        initial_state = list(initial_state)
        use_scan = (
            getattr(cell, "parallel_scan", None) is not None
            and getattr(self, "scan", True)
            and mask is None
            and not self.go_backwards
            and not self.unroll
            # A quantized state is rounded at every frame: no linear scan.
            and self.state_ranges is None
            and self.tensor_ranges is None
            # TensorFlow's scan needs a static number of frames.
            and sequences.shape[1] is not None
        )
        if use_scan:
            outputs, states = cell.parallel_scan(
                cell.project_inputs(sequences), initial_state
            )
            return outputs[:, -1], outputs, states

        # Where the input projection runs is a measured, per-backend choice
        # (benchmarks/bench_layers.py, docs/benchmarks.md, 2-core CPU): hoisted
        # out of the loop it makes torch's Python loop 3-8x faster than
        # Keras's own layers, but it slowed tf.while_loop and lax.scan (GRU
        # 0.73x -> 1.11x of Keras's on TensorFlow, 0.97x -> 1.34x on JAX once
        # moved back into the step): there the per-step matmul is cheaper than
        # carrying the wide projected sequence through the loop and its gradient.
        hoist = keras.backend.backend() == "torch"
        torch_stateful = keras.backend.backend() == "torch" and self.stateful
        # As in Keras's layers, one dropout mask per sequence, the same at
        # every frame; never outside training, so streaming is unaffected.
        input_mask, recurrent_mask = (
            cell.dropout_masks(sequences, initial_state) if training else (None, None)
        )
        if input_mask is not None:
            sequences = sequences * ops.expand_dims(input_mask, 1)
        step_options = (
            {} if recurrent_mask is None else {"recurrent_mask": recurrent_mask}
        )

        def step(inputs_t, states):
            if torch_stateful:
                # Copies avoid in-place updates of tensors that autograd needs.
                states = [ops.copy(s) for s in states]
            projected_t = inputs_t if hoist else cell.project_inputs(inputs_t)
            return cell.step(
                projected_t, self._quantized(states), training=training, **step_options
            )

        return backend_rnn(
            step,
            cell.project_inputs(sequences) if hoist else sequences,
            initial_state,
            go_backwards=self.go_backwards,
            mask=mask,
            unroll=self.unroll,
            input_length=sequences.shape[1],
            return_all_outputs=self.return_sequences,
        )

    def _check_initial_state(self, initial_state):
        if initial_state is None:
            return
        states = (
            list(initial_state)
            if isinstance(initial_state, list | tuple)
            else [initial_state]
        )
        expected = len(self.cell._state_sizes())
        if len(states) != expected:
            raise ValueError(
                f"Layer '{self.name}' has {expected} state tensor(s); initial_state holds "
                f"{len(states)}."
            )

    def call(self, sequences, initial_state=None, mask=None, training=False):
        self._check_inputs(sequences)
        self._check_initial_state(initial_state)
        if sequences.shape[1] == 0:
            raise ValueError(
                f"Layer '{self.name}' received a sequence of 0 frames (shape "
                f"{tuple(sequences.shape)}): there is nothing to run."
            )
        return super().call(
            sequences, initial_state=initial_state, mask=mask, training=training
        )

    def stream_call(self, sequences, states, training=False):
        """Runs a chunk from `states` and returns `(outputs, new_states)`.

        A pure function: the layer's own state variables (when `stateful`) are
        neither read nor written. `outputs` is shaped as the layer's `call`
        would return it (the whole chunk when `return_sequences`).
        """
        self._check_inputs(sequences)
        states = [ops.cast(s, self.cell.compute_dtype) for s in states]
        last_output, outputs, new_states = self.inner_loop(
            sequences, states, None, training=training
        )
        output = outputs if self.return_sequences else last_output
        return output, list(new_states)

    def reset_state(self):
        """Sets the state variables (when `stateful`) to the initial state."""
        if self.states is None:
            return
        batch_size = ops.shape(self.states[0])[0]
        for variable, value in zip(self.states, self.get_initial_state(batch_size)):
            variable.assign(value)

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        config.pop("zero_output_for_mask", None)
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        config.update(cell_config)
        config["state_ranges"] = (
            None if self.state_ranges is None else [list(r) for r in self.state_ranges]
        )
        config["tensor_ranges"] = tensor_ranges_config(self.tensor_ranges)
        config["weight_quantization"] = self.weight_quantization
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
