"""`Streamer`: runs a trained model on an endless stream, chunk by chunk, never resetting."""

import contextlib

import keras
import numpy as np
from keras import ops

from keras_resetfree._compat import call_has_training_arg, run_through_graph
from keras_resetfree.layers.base import ResetFreeRNN, check_sequences

# Layers that act on each frame alone (or are containers): streaming them chunk by
# chunk gives the whole stream's outputs. Anything else may mix time steps
# (attention, convolutions over time, pooling, reshapes, Lambda) and is refused.
_PER_FRAME = (
    keras.layers.InputLayer,
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Normalization,
    keras.layers.Rescaling,
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.PReLU,
    keras.layers.ELU,
    keras.layers.Softmax,
    keras.layers.Dropout,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
    keras.layers.Identity,
    keras.layers.BatchNormalization,
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Average,
    keras.layers.Maximum,
    keras.layers.Minimum,
)


@contextlib.contextmanager
def unrolled(layers):
    """Runs the recurrent `layers` with their time loop unrolled, for fixed, short
    chunks: plain ops (no WHILE, on which boards have hung; the SSM takes its
    step path) that also run eagerly on every backend."""
    saved = [layer.unroll for layer in layers]
    for layer in layers:
        layer.unroll = True
    try:
        yield
    finally:
        for layer, value in zip(layers, saved):
            layer.unroll = value


def _per_frame(layer):
    """Whether `layer` maps each frame on its own (the last axis only, where it has an axis)."""
    if isinstance(layer, keras.layers.LayerNormalization | keras.layers.Concatenate):
        axis = layer.axis if isinstance(layer.axis, int) else tuple(layer.axis)
        return axis in (-1, (-1,), 2, (2,))
    if isinstance(layer, keras.layers.Softmax):
        return layer.axis in (-1, 2)
    if isinstance(layer, keras.layers.BatchNormalization):
        return layer.axis in (-1, 2)
    return isinstance(layer, _PER_FRAME)


def _top_level_layers(model):
    """The layers of `model` and of the models nested in it (not the cells inside layers)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _top_level_layers(layer)
        else:
            yield layer


def _recurrent_layers(model, per_frame=()):
    """Every `ResetFreeRNN` of `model` (nested models included), in a fixed order.

    Raises a TypeError for a layer the Streamer cannot stream: Keras's own RNN
    layers (their state is not carried), a `go_backwards` layer, and any layer
    not known to work frame by frame (it may mix time steps).
    """
    found = []
    for layer in _top_level_layers(model):
        if isinstance(layer, ResetFreeRNN):
            if layer.go_backwards:
                raise TypeError(
                    f"Streamer cannot stream layer '{layer.name}' ({type(layer).__name__}) "
                    "with go_backwards=True: a backwards pass needs the end of the stream, "
                    "which never comes."
                )
            found.append(layer)
        elif isinstance(layer, keras.layers.RNN):
            raise TypeError(
                f"Streamer cannot carry the state of layer '{layer.name}' "
                f"({type(layer).__name__}): use the keras_resetfree.layers "
                "equivalent (VanillaRNN, GRU, LSTM, ...), whose state it carries "
                "explicitly on every backend."
            )
        elif not (_per_frame(layer) or layer.name in per_frame):
            raise TypeError(
                f"Streamer cannot stream layer '{layer.name}' ({type(layer).__name__}): it is "
                "not known to act on each frame alone, so streamed outputs could differ from "
                "the whole stream's and depend on the chunk size. Per-frame layers (Dense, "
                "Normalization, activations, dropout, elementwise merges, LayerNormalization "
                "on the last axis) and keras_resetfree.layers are supported; recurrence over "
                "time must be a keras_resetfree layer. If this layer does act on each frame "
                f"alone (an elementwise Lambda, say), pass per_frame=['{layer.name}']."
            )
    return found


class Streamer:
    """Runs a trained model on chunks of a stream, carrying every recurrent state.

    The state of each `keras_resetfree.layers` recurrent layer is held by the
    Streamer and passed explicitly from one call to the next, so streaming
    works the same on TensorFlow, JAX and PyTorch (Keras's `stateful=True`
    does not carry state through `predict` on JAX). Chunks may have any number
    of frames; the outputs equal those of the whole stream fed at once.
    The model runs in inference mode (dropout off, normalisation statistics
    frozen). The step is compiled (`tf.function` on TensorFlow, `jax.jit` on
    JAX) and run under `torch.no_grad()` on PyTorch.

    Args:
        model: a Sequential or functional Keras model (nested models allowed)
            whose recurrent layers are `keras_resetfree.layers`.
        batch_size: number of independent streams run side by side.
        jit_compile: compile the step (default True).
        per_frame: names of layers you vouch act on each frame alone (e.g. an
            elementwise `Lambda`), beyond the Keras layers known to.

    Example:

    >>> streamer = keras_resetfree.Streamer(model, batch_size=1)
    >>> for chunk in chunks:          # (1, frames, features) each
    ...     probs = streamer.step(chunk)
    >>> streamer.reset()              # back to the initial state, if you must
    """

    def __init__(self, model, batch_size=1, jit_compile=True, per_frame=()):
        if not isinstance(model, keras.Model):
            raise TypeError(
                f"Streamer needs a keras.Model, got {type(model).__name__}."
            )
        if not model.built or not getattr(model, "inputs", None):
            raise ValueError(
                "Streamer needs a built Sequential or functional model with a known "
                "input shape (start it with keras.Input((None, features)))."
            )
        if len(model.inputs) != 1:
            raise ValueError(
                f"Streamer supports models with one input; '{model.name}' has {len(model.inputs)}."
            )
        self.model = model
        self.batch_size = int(batch_size)
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        input_shape = tuple(model.inputs[0].shape)
        check_sequences(f"{model.name} (Streamer input)", input_shape, None)
        self.input_dim = input_shape[-1]
        self._layers = _recurrent_layers(model, tuple(per_frame))
        self._index = {id(layer): i for i, layer in enumerate(self._layers)}
        self._step_fn = self._compile(jit_compile)
        self._lengths = set()
        self.traced_lengths = set()  # every chunk length compiled so far
        self._dtype = np.dtype(keras.backend.standardize_dtype(model.inputs[0].dtype))
        self.reset()

    # -- state -------------------------------------------------------------
    def _initial_state(self):
        return [
            [ops.convert_to_tensor(s) for s in layer.get_initial_state(self.batch_size)]
            for layer in self._layers
        ]

    def reset(self):
        """Returns every recurrent state to the layers' initial state."""
        self._state = self._initial_state()

    @property
    def state(self):
        """The carried states as numpy arrays: one list per recurrent layer."""
        return [[ops.convert_to_numpy(s) for s in states] for states in self._state]

    @state.setter
    def state(self, value):
        reference = self._initial_state()
        if len(value) != len(reference):
            raise ValueError(
                f"Streamer state needs {len(reference)} layer states, got {len(value)}."
            )
        new_state = []
        for layer, given, expected in zip(self._layers, value, reference):
            if len(given) != len(expected):
                raise ValueError(
                    f"Layer '{layer.name}' has {len(expected)} state tensors, got {len(given)}."
                )
            tensors = []
            for g, e in zip(given, expected):
                if tuple(np.shape(g)) != tuple(e.shape):
                    raise ValueError(
                        f"Layer '{layer.name}': state shape {tuple(e.shape)} expected, "
                        f"received {tuple(np.shape(g))}."
                    )
                tensors.append(ops.convert_to_tensor(np.asarray(g), dtype=e.dtype))
            new_state.append(tensors)
        self._state = new_state

    # -- running -----------------------------------------------------------
    def _forward(self, x, states):
        """Runs the model graph on `x` from `states`; returns `(outputs, new_states)`."""
        new_states = list(states)

        def operation_fn(op):
            if isinstance(op, ResetFreeRNN):

                def run_recurrent(sequences, *args, **kwargs):
                    i = self._index[id(op)]
                    output, new_states[i] = op.stream_call(sequences, states[i])
                    return (output, *new_states[i]) if op.return_state else output

                return run_recurrent
            if isinstance(op, keras.Model):
                return lambda inputs, *args, **kwargs: run_model(op, inputs)

            def run_layer(*args, **kwargs):
                if call_has_training_arg(op):
                    kwargs["training"] = False
                return op(*args, **kwargs)

            return run_layer

        def run_model(model, inputs):
            outputs = run_through_graph(model, inputs, operation_fn)
            if outputs is None:
                raise TypeError(
                    f"Streamer supports Sequential and functional models; "
                    f"'{model.name}' ({type(model).__name__}) is subclassed, so its "
                    "graph cannot be followed."
                )
            return (
                outputs[0]
                if isinstance(outputs, (list, tuple)) and len(outputs) == 1
                else outputs
            )

        return run_model(self.model, x), new_states

    def _compile(self, jit_compile):
        backend = keras.backend.backend()
        if not jit_compile:
            return self._forward
        if backend == "tensorflow":
            import tensorflow as tf

            # One trace per chunk length: a static length lets the SSM scan.
            return tf.function(self._forward)
        if backend == "jax":
            import jax

            variables = self.model.variables

            def pure(values, x, states):
                with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                    return self._forward(x, states)

            jitted = jax.jit(pure)
            return lambda x, states: jitted([v.value for v in variables], x, states)
        if backend == "torch":
            import torch

            def no_grad(x, states):
                with torch.no_grad():
                    return self._forward(x, states)

            return no_grad
        return self._forward

    def _check_chunk(self, chunk):
        shape = tuple(chunk.shape)
        check_sequences(
            f"{self.model.name} (Streamer input)", shape, chunk.dtype, self.input_dim
        )
        if shape[0] != self.batch_size:
            raise ValueError(
                f"Streamer for '{self.model.name}' runs batch_size={self.batch_size} "
                f"streams; received a chunk of shape {shape} (batch {shape[0]})."
            )

    def step(self, chunk):
        """Runs one chunk `(batch_size, frames, features)`, frames >= 1.

        Returns the model's outputs for the chunk as numpy (per frame for a
        per-frame model). The state is carried to the next call. Any float
        dtype is accepted (cast to the model's input dtype). A chunk with NaN
        or Inf is refused: it would poison the recurrent state for good.

        Chunks of any length work; the first `MAX_TRACED_LENGTHS` distinct
        lengths are compiled as they are, later new lengths run as pieces of
        power-of-two lengths, so the compiled steps (and memory) stay bounded
        however the chunks are cut.
        """
        if not hasattr(chunk, "shape") or not hasattr(chunk, "dtype"):
            chunk = np.asarray(chunk)
        self._check_chunk(chunk)
        frames = tuple(chunk.shape)[1]
        if frames == 0:
            raise ValueError("Streamer.step received a chunk with 0 frames.")
        values = np.asarray(ops.convert_to_numpy(chunk), dtype=self._dtype)
        if not np.isfinite(values).all():
            bad = np.flatnonzero(~np.isfinite(values).all(axis=(0, 2)))
            raise ValueError(
                f"Streamer.step: the chunk has NaN or Inf at frame(s) {bad[:5].tolist()}"
                f"{' ...' if len(bad) > 5 else ''} of {frames}. A non-finite input would "
                "poison the recurrent state for good (a spiking layer stops firing, other "
                "layers output NaN); clean or drop those frames before streaming."
            )
        outputs = []
        start = 0
        for length in self._pieces(frames):
            piece = ops.convert_to_tensor(values[:, start : start + length])
            self.traced_lengths.add(length)
            out, self._state = self._step_fn(piece, self._state)
            outputs.append(keras.tree.map_structure(ops.convert_to_numpy, out))
            start += length
        if len(outputs) == 1:
            return outputs[0]
        return keras.tree.map_structure(
            lambda *parts: np.concatenate(parts, axis=1), *outputs
        )

    MAX_TRACED_LENGTHS = 8

    def _pieces(self, frames):
        if frames in self._lengths or len(self._lengths) < self.MAX_TRACED_LENGTHS:
            self._lengths.add(frames)
            return [frames]
        return [
            1 << bit
            for bit in reversed(range(frames.bit_length()))
            if frames >> bit & 1
        ]

    def run(self, stream, chunk_size=1, verbose=0):
        """Streams a whole array `(batch_size, frames, features)` in chunks; returns the outputs.

        `verbose`: 0 silent, 1 a progress bar over the frames, 2 one line at
        the end (as in Keras's `predict`).
        """
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be >= 1 frame, got {chunk_size}.")
        stream = np.asarray(stream)
        self._check_chunk(stream)
        if stream.shape[1] == 0:
            raise ValueError("Streamer.run received a stream with 0 frames.")
        progress = keras.utils.Progbar(
            stream.shape[1], verbose=verbose, unit_name="frame"
        )
        pieces = []
        for start in range(0, stream.shape[1], chunk_size):
            pieces.append(self.step(stream[:, start : start + chunk_size]))
            if verbose:
                progress.update(min(start + chunk_size, stream.shape[1]))
        return np.concatenate(pieces, axis=1)
