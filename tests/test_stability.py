"""Never-reset stability: 100,000 streaming steps stay finite and bounded."""

import keras
import numpy as np
import pytest

from keras_resetfree import Streamer, layers
from tests.families import FAMILIES, FEATURES, stacked_model

STEPS = 100_000
CHUNK = 2_000


def _run(model, make_chunk):
    """Streams STEPS frames (batch 2: random and silent input).

    Returns per-chunk output RMS and the peak of the carried state after each chunk.
    """
    streamer = Streamer(model, batch_size=2)
    levels, state_peaks = [], []
    for i in range(STEPS // CHUNK):
        out = streamer.step(make_chunk(i))
        assert np.all(np.isfinite(out)), f"non-finite output in chunk {i}"
        states = [s for layer in streamer.state for s in layer]
        assert all(np.all(np.isfinite(s)) for s in states), (
            f"non-finite state in chunk {i}"
        )
        levels.append(np.sqrt(np.mean(out**2)))
        state_peaks.append(max(np.abs(s).max() for s in states))
    return np.array(levels), np.array(state_peaks)


def _chunks(seed=0, scale=3.0):
    rng = np.random.default_rng(seed)

    def make_chunk(_):
        noise = rng.normal(size=(1, CHUNK, FEATURES)).astype("float32") * scale
        return np.concatenate([noise, np.zeros_like(noise)], axis=0)

    return make_chunk


def _assert_no_growth(levels, state_peaks):
    """Output level stationary (last tenth within 25 % of the first); state peaks not growing."""
    tenth = len(levels) // 10
    first, last = levels[:tenth].mean(), levels[-tenth:].mean()
    assert last <= 1.25 * first + 1e-3, ("output RMS grew", first, last)
    first, last = state_peaks[:tenth].max(), state_peaks[-tenth:].max()
    assert last <= 3.0 * first + 1e-3, ("state peak grew", first, last)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_long_stream_stays_bounded(name):
    _assert_no_growth(*_run(stacked_model(name), _chunks()))


@pytest.mark.slow
def test_ssm_bounded_for_arbitrary_weights():
    """Decay at the edge (nu very negative) and large weights: the state obeys its bound.

    Per mode, |s_t| <= max_k |gamma (u_k B)| / (1 - |lambda|) at every step,
    checked after each chunk of a 100,000-frame stream.
    """
    inputs = keras.Input((None, FEATURES))
    layer = layers.SSM(8, state_size=4)
    model = keras.Model(inputs, layer(inputs))
    cell = layer.cell
    rng = np.random.default_rng(3)
    cell.nu.assign(np.full(cell.nu.shape, -60.0, "float32"))
    for weight in (cell.b, cell.input_kernel):
        weight.assign(rng.normal(scale=5.0, size=weight.shape).astype("float32"))
    lam_re, lam_im = (keras.ops.convert_to_numpy(t) for t in cell.eigenvalues())
    radius = np.sqrt(lam_re**2 + lam_im**2)
    assert np.all(radius < 1.0)
    streamer = Streamer(model, batch_size=2)
    make_chunk = _chunks(scale=10.0)
    m = cell.modes
    drive = np.zeros((m,), "float32")
    for i in range(STEPS // CHUNK):
        chunk = make_chunk(i)
        projected = keras.ops.convert_to_numpy(cell.project_inputs(chunk))
        drive = np.maximum(
            drive,
            np.hypot(projected[..., :m], projected[..., m : 2 * m]).max(axis=(0, 1)),
        )
        out = streamer.step(chunk)
        assert np.all(np.isfinite(out))
        state = streamer.state[0][0]
        magnitude = np.hypot(state[:, :m], state[:, m:])
        assert np.all(magnitude <= drive / (1.0 - radius) * 1.001 + 1e-3), (
            i,
            magnitude,
            drive,
        )
