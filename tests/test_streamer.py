import keras
import numpy as np
import pytest

from keras_resetfree import Streamer, layers
from tests.families import FAMILIES, FEATURES, UNITS, stacked_model


def _stream(batch=2, frames=50, seed=0):
    return (
        np.random.default_rng(seed)
        .normal(size=(batch, frames, FEATURES))
        .astype("float32")
    )


@pytest.mark.parametrize("name", sorted(FAMILIES))
@pytest.mark.parametrize("chunk", [1, 7, 50])
def test_streaming_parity(name, chunk):
    """Whole sequence == fed in chunks with the state carried, for 2 stacked layers + a head."""
    model = stacked_model(name, dense_head=True)
    x = _stream() * 2.0
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    streamer = Streamer(model, batch_size=2)
    got = streamer.run(x, chunk_size=chunk)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_run_progress(capsys):
    model = stacked_model("gru")
    x = _stream(frames=20)
    quiet = Streamer(model, batch_size=2).run(x, chunk_size=6)
    assert capsys.readouterr().out == ""
    shown = Streamer(model, batch_size=2).run(x, chunk_size=6, verbose=2)
    assert "20/20" in capsys.readouterr().out
    np.testing.assert_array_equal(shown, quiet)


def test_state_get_set_and_reset():
    model = stacked_model("lstm")
    x = _stream()
    streamer = Streamer(model, batch_size=2)
    streamer.step(x[:, :20])
    saved = streamer.state
    assert [len(s) for s in saved] == [2, 2]  # two LSTMs, [h, c] each
    tail = streamer.step(x[:, 20:])
    streamer.state = saved
    np.testing.assert_allclose(streamer.step(x[:, 20:]), tail, atol=1e-6)
    streamer.reset()
    for states in streamer.state:
        for s in states:
            np.testing.assert_array_equal(s, np.zeros_like(s))
    np.testing.assert_allclose(
        streamer.step(x), keras.ops.convert_to_numpy(model(x)), atol=1e-5
    )
    with pytest.raises(ValueError, match="state shape"):
        streamer.state = [[np.zeros((3, UNITS))] * 2] * 2


def test_sequential_and_nested_models():
    inner = keras.Sequential(
        [keras.Input((None, FEATURES)), layers.GRU(UNITS), keras.layers.Dense(4)]
    )
    outer_in = keras.Input((None, FEATURES))
    outer = keras.Model(outer_in, layers.SSM(4, state_size=2)(inner(outer_in)))
    x = _stream()
    for model in (inner, outer):
        expected = keras.ops.convert_to_numpy(model(x))
        np.testing.assert_allclose(
            Streamer(model, batch_size=2).run(x, chunk_size=3), expected, atol=1e-5
        )


def test_return_state_layer_in_graph():
    inputs = keras.Input((None, FEATURES))
    seq, state = layers.GRU(UNITS, return_state=True)(inputs)
    outputs = keras.layers.Dense(2)(seq) + keras.ops.expand_dims(
        keras.layers.Dense(2)(state), 1
    )
    model = keras.Model(inputs, outputs)
    x = _stream(frames=1)
    np.testing.assert_allclose(
        Streamer(model, batch_size=2).step(x),
        keras.ops.convert_to_numpy(model(x)),
        atol=1e-5,
    )


def test_bad_chunks():
    model = stacked_model("gru")
    model.name  # noqa: B018
    streamer = Streamer(model, batch_size=2)
    with pytest.raises(ValueError, match=r"batch_size=2.*\(3, 5, 6\)"):
        streamer.step(np.zeros((3, 5, FEATURES), "float32"))
    with pytest.raises(
        ValueError, match=r"Streamer input.*\(batch, frames, 6\).*\(2, 5, 4\)"
    ):
        streamer.step(np.zeros((2, 5, 4), "float32"))
    with pytest.raises(ValueError, match=r"rank 3.*\(5, 6\)"):
        streamer.step(np.zeros((5, FEATURES), "float32"))
    with pytest.raises(ValueError, match=r"floating-point.*int16"):
        streamer.step(np.zeros((2, 5, FEATURES), "int16"))
    with pytest.raises(ValueError, match="0 frames"):
        streamer.step(np.zeros((2, 0, FEATURES), "float32"))


def test_unsupported_models():
    inputs = keras.Input((None, FEATURES))
    keras_gru = keras.Model(inputs, keras.layers.GRU(4, return_sequences=True)(inputs))
    with pytest.raises(TypeError, match="keras_resetfree.layers"):
        Streamer(keras_gru)

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.gru = layers.GRU(4)

        def call(self, x):
            return self.gru(x)

    model = Subclassed()
    model(_stream())
    with pytest.raises((TypeError, ValueError), match="Sequential|functional"):
        Streamer(model, batch_size=2).step(_stream())


@pytest.mark.parametrize(
    "make",
    [
        lambda: keras.layers.MultiHeadAttention(2, 4),
        lambda: keras.layers.Conv1D(4, 3, padding="causal"),
    ],
    ids=["attention", "causal_conv"],
)
def test_layers_that_mix_time_steps_are_refused(make):
    from keras_resetfree import export

    inputs = keras.Input((None, 4))
    layer = make()
    x = layers.GRU(4)(inputs)
    x = layer(x, x) if isinstance(layer, keras.layers.MultiHeadAttention) else layer(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    with pytest.raises(
        TypeError, match=rf"'{layer.name}' \({type(layer).__name__}\).*each frame alone"
    ):
        Streamer(model)
    with pytest.raises(TypeError, match=rf"'{layer.name}'"):
        export.to_tflite(model, quantize="float")


def test_go_backwards_is_refused():
    inputs = keras.Input((None, 4))
    model = keras.Model(inputs, layers.GRU(4, go_backwards=True)(inputs))
    with pytest.raises(TypeError, match="go_backwards=True"):
        Streamer(model)


def test_float64_chunks_and_non_finite_input():
    model = stacked_model("gru")
    x = np.random.default_rng(0).normal(size=(1, 30, FEATURES))
    streamer = Streamer(model)
    from_float64 = streamer.run(x, chunk_size=10)  # numpy's default dtype
    streamer.reset()
    np.testing.assert_allclose(
        from_float64, streamer.run(x.astype("float32"), 10), atol=1e-6
    )
    streamer.reset()
    bad = x.copy()
    bad[0, 12, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or Inf at frame\(s\) \[2\]"):
        streamer.run(bad, chunk_size=10)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        streamer.run(x, chunk_size=0)
    with pytest.raises(ValueError, match="0 frames"):
        streamer.run(x[:, :0])


@pytest.mark.parametrize("family", ["gru", "alif", "ssm"])
def test_nan_frame_never_reaches_the_state(family):
    """A refused chunk leaves the state as it was: the stream goes on unharmed."""
    model = stacked_model(family)
    x = np.random.default_rng(0).normal(size=(1, 40, FEATURES)).astype("float32")
    streamer = Streamer(model)
    streamer.step(x[:, :20])
    before = streamer.state
    with pytest.raises(ValueError, match="NaN or Inf"):
        streamer.step(np.full((1, 5, FEATURES), np.inf, "float32"))
    for got, want in zip(streamer.state, before):
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    assert np.isfinite(streamer.step(x[:, 20:])).all()


def test_random_chunk_lengths_compile_a_bounded_number_of_steps():
    model = stacked_model("gru")
    x = np.random.default_rng(0).normal(size=(1, 600, FEATURES)).astype("float32")
    whole = Streamer(model).run(x, chunk_size=600)
    streamer = Streamer(model)
    cuts = np.cumsum(np.random.default_rng(1).integers(1, 40, size=60))
    cuts = [0, *[int(c) for c in cuts if c < 600], 600]
    outputs = [streamer.step(x[:, a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    np.testing.assert_allclose(np.concatenate(outputs, axis=1), whole, atol=1e-5)
    distinct = len(set(np.diff(cuts)))
    assert distinct > Streamer.MAX_TRACED_LENGTHS + 6  # the test cuts many lengths
    # Compiled lengths: the first 8, then powers of two below 40 (1 ... 32).
    assert len(streamer.traced_lengths) <= Streamer.MAX_TRACED_LENGTHS + 6
