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
