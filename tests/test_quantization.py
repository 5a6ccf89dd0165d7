"""Quantization-aware training: the layers' 8-bit grids and `export.quantization_aware`."""

import keras
import numpy as np
import pytest

from keras_resetfree import ResetFreeLoss, Streamer, export, layers
from keras_resetfree.recipes import build_model
from tests.families import FEATURES

ON_TF = keras.backend.backend() == "tensorflow"


# The SSM's matmuls: input projection, B, C and the GLU's kernel.
MATMUL_OUTPUTS = {"ssm": {"input", "input_fc", "driven", "state_fc", "glu_fc"}}


def _stream(frames=1200, seed=0):
    return (np.random.default_rng(seed).normal(size=(frames, FEATURES)) * 2.0).astype(
        "float32"
    )


def _model():
    inputs = keras.Input((None, FEATURES))
    x = layers.GRU(8)(inputs)
    x = layers.LSTM(8)(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def test_ranges_from_the_stream_within_the_cells_bounds():
    model = _model()
    stream = _stream()
    aware = export.quantization_aware(model, stream, margin=0.25)
    gru, lstm = (layer for layer in aware.layers if hasattr(layer, "state_ranges"))
    extremes = export.state_extremes(model, stream)

    def expected(observed, bound=None):
        low, high = observed
        span = high - low
        low, high = min(low - 0.25 * span, 0.0), max(high + 0.25 * span, 0.0)
        if bound is not None:
            low, high = max(low, bound[0]), min(high, bound[1])
        return low, high

    # Bounded states (h of GRU and LSTM: within tanh's int8 grid, [-1, 127/128])
    # take their observed range plus margin, capped by the bound; LSTM's c has none.
    tanh = (-1.0, 127 / 128)
    np.testing.assert_allclose(gru.state_ranges[0], expected(extremes[0][0], tanh))
    np.testing.assert_allclose(lstm.state_ranges[0], expected(extremes[1][0], tanh))
    np.testing.assert_allclose(lstm.state_ranges[1], expected(extremes[1][1]))
    assert tanh[0] <= gru.state_ranges[0][0] < 0 < gru.state_ranges[0][1] <= tanh[1]
    for a, b in zip(aware.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Saved and loaded with its ranges.
    clone = layers.LSTM.from_config(lstm.get_config())
    assert clone.state_ranges == lstm.state_ranges


def test_copy_keeps_an_adapted_normalization():
    stream = _stream() + 5.0  # far from zero mean: a lost adaptation shows
    model = build_model("gru", FEATURES, 3, 8, normalization=stream)
    aware = export.quantization_aware(model, stream)
    x = stream[None, :300]
    expected = keras.ops.convert_to_numpy(model(x))
    got = keras.ops.convert_to_numpy(aware(x))
    # Only the state's 8-bit rounding separates them.
    assert np.abs(got - expected).max() < 0.1
    # The board's float standardisation, split off the copy, keeps the features' shape.
    from keras_resetfree.recipes import deploy
    from keras_resetfree.recipes.spotter import split_normalization

    normalization, _ = split_normalization(aware)
    assert deploy.standardize(normalization, stream).shape == stream.shape


def test_state_held_on_the_8_bit_grid():
    layer = layers.GRU(6, state_ranges=[(-1.0, 1.0)], return_state=True)
    x = _stream(40)[None]
    _, h = layer(x)
    h = keras.ops.convert_to_numpy(h)
    scale = 2.0 / 255.0
    steps = (h + 1.0) / scale
    # On the grid of a FakeQuant of [-1, 1] (its zero point nudged to a step).
    np.testing.assert_allclose(steps - np.round(steps), 0.0, atol=0.51)
    assert len(np.unique(np.round(h / scale, 3) % 1)) <= 2
    plain = layers.GRU(6, return_state=True)
    plain.build(x.shape)
    plain.set_weights(layer.get_weights())
    assert not np.allclose(keras.ops.convert_to_numpy(plain(x)[1]), h)
    # Streaming gives the same numbers as the whole sequence.
    inputs = keras.Input((None, FEATURES))
    model = keras.Model(inputs, layers.GRU(6, state_ranges=[(-1.0, 1.0)])(inputs))
    whole = keras.ops.convert_to_numpy(model(x))
    np.testing.assert_allclose(Streamer(model).run(x, chunk_size=7), whole, atol=1e-6)


def test_quantization_aware_model_trains():
    keras.utils.set_random_seed(0)
    aware = export.quantization_aware(_model(), _stream())
    aware.compile(optimizer="adam", loss=ResetFreeLoss(from_logits=True))
    x = _stream(400).reshape(4, 100, FEATURES)
    y = np.random.default_rng(1).integers(0, 3, size=(4, 100)).astype("int32")
    before = [np.copy(w) for w in aware.get_weights()]
    aware.fit(x, y, epochs=2, verbose=0)
    after = aware.get_weights()
    assert all(np.isfinite(w).all() for w in after)
    assert any(not np.allclose(a, b) for a, b in zip(before, after))


@pytest.mark.skipif(not ON_TF, reason="the converter's tensors are read on TensorFlow")
@pytest.mark.parametrize(
    "family, front_end",
    [(f, None) for f in ("vanilla_rnn", "leaky_rnn", "gru", "lstm", "ssm")]
    + [("gru", (8, 3)), ("gru", (8, 3, 2))],
)
def test_int8_state_takes_the_ranges_and_stays_integer(family, front_end):
    pytest.importorskip("tflite_micro", reason="the tflm extra is not installed")
    from keras_resetfree.export.ops import _interpreter

    keras.utils.set_random_seed(0)
    model = build_model(family, FEATURES, 3, 16, front_end=front_end)
    stream = _stream()
    aware = export.quantization_aware(model, stream)
    data = export.to_tflite(aware, stream, quantize="int8")
    ops = [name for name, _ in export.op_details(data)]
    assert "DEQUANTIZE" not in ops, ops
    interpreter = _interpreter(data)
    tensors = {t["name"]: t for t in interpreter.get_tensor_details()}
    # Integer only: no float tensor anywhere in the step.
    floats = [n for n, t in tensors.items() if np.dtype(t["dtype"]) == np.float32]
    assert not floats, floats
    reads = sorted(n for n in tensors if n.startswith("Read") and "ReadVariableOp" in n)
    ranges = [
        r
        for layer in aware.layers
        for r in (getattr(layer, "state_ranges", None) or [])
    ]
    assert len(reads) == len(ranges)
    scales = sorted(tensors[n]["quantization"][0] for n in reads)
    expected = sorted((high - low) / 255.0 for low, high in ranges)
    np.testing.assert_allclose(scales, expected, rtol=1e-5)
    # The model's input and the logits take the ranges the training used too.
    (source,), (target,) = (
        interpreter.get_input_details(),
        interpreter.get_output_details(),
    )
    for details, (low, high) in (
        (source, aware.layers[1].tensor_ranges["input"]),
        (target, aware.layers[-1].tensor_ranges["output"]),
    ):
        np.testing.assert_allclose(
            details["quantization"][0], (high - low) / 255.0, rtol=1e-5
        )
    # The converter and the training agree: int8 follows the aware model.
    test = _stream(600, seed=3)
    reference = Streamer(aware).run(test[None], chunk_size=100)[0]
    got = export.MicroStepper(data).run(test)
    # Weights, activations and state on the same grids in both: the logits
    # stay within a few output steps, and the argmax differs on about one
    # frame in a hundred of those that are no near-tie (TFLite's
    # LOGISTIC/TANH tables). An untrained stacked front end leaves most
    # frames near a tie, where a rounding step decides the argmax.
    (low, high) = aware.layers[-1].tensor_ranges["output"]
    assert np.abs(got - reference).max() <= 8 * (high - low) / 255.0
    top = np.sort(reference, axis=-1)
    clear = top[:, -1] - top[:, -2] > 0.1
    assert clear.mean() > 0.5
    agree = got.argmax(-1)[clear] == reference.argmax(-1)[clear]
    assert np.mean(agree) >= 0.985


def test_weights_on_tflites_symmetric_int8_grid():
    from keras_resetfree.layers.quantized import weight_on_grid

    weight = np.random.default_rng(0).normal(size=(7, 5)).astype("float32")
    weight[:, 2] *= 0.01  # a quiet channel: its own grid is far finer
    per_tensor = keras.ops.convert_to_numpy(weight_on_grid(weight, "per_tensor"))
    scale = np.abs(weight).max() / 127
    np.testing.assert_allclose(per_tensor / scale, np.round(weight / scale), atol=1e-3)
    per_channel = keras.ops.convert_to_numpy(weight_on_grid(weight, "per_channel"))
    scales = np.abs(weight).max(axis=0) / 127
    np.testing.assert_allclose(
        per_channel / scales, np.round(weight / scales), atol=1e-3
    )
    assert np.abs(per_channel - weight).max() < np.abs(per_tensor - weight).max()
    assert weight_on_grid(weight, None) is weight


@pytest.mark.parametrize(
    "family, front_end",
    [(f, None) for f in ("vanilla_rnn", "leaky_rnn", "gru", "lstm", "ssm")]
    + [("gru", (8, 3))],
)
def test_every_tensor_of_the_step_gets_a_grid(family, front_end):
    keras.utils.set_random_seed(0)
    model = build_model(family, FEATURES, 3, 8, front_end=front_end)
    aware = export.quantization_aware(model, _stream(400))
    at = 1 if front_end is None else 2
    recurrent = aware.layers[at]
    cell = recurrent.cell
    assert recurrent.weight_quantization == "per_tensor"
    ranges = recurrent.tensor_ranges
    # The model's input, the matmul outputs, and the gates on TFLite's fixed grids.
    expected = MATMUL_OUTPUTS.get(family, {"input", "input_fc", "recurrent_fc"})
    if front_end is not None:
        # The model's input is the front end's; the recurrent layer's input
        # is the front end's output, already on its grid.
        assert {"input", "output_fc", "activation"} <= set(
            aware.layers[1].tensor_ranges
        )
        expected = expected - {"input"}
    assert expected <= set(ranges)
    for name, bounds in cell.fixed_ranges().items():
        assert ranges[name] == bounds
    assert all(low <= 0.0 <= high for low, high in ranges.values())
    readout = aware.layers[-1]
    assert isinstance(readout, layers.QuantizedDense)
    # The readout's input is the state, already on its grid.
    assert set(readout.tensor_ranges) == {"output"}
    # Saved and loaded with every range.
    again = keras.Model.from_config(aware.get_config())
    assert again.layers[at].tensor_ranges == ranges
    assert again.layers[-1].tensor_ranges == readout.tensor_ranges
    # Fine-tuning starts from the float model: only the rounding separates them.
    x = _stream(200, seed=4)[None]
    float_out = keras.ops.convert_to_numpy(model(x))
    aware_out = keras.ops.convert_to_numpy(aware(x))
    difference = np.abs(aware_out - float_out)
    # A few percent of the outputs' size (2-7 % over seeds 0-3 on JAX; the SSM,
    # with the longest chain of rounded tensors, the most); a model that lost
    # its weights is ~100 % off.
    assert difference.max() > 0
    assert difference.mean() < 0.15 * np.abs(float_out).mean()


@pytest.mark.skipif(not ON_TF, reason="the converter runs on TensorFlow")
def test_conversion_keeps_the_weight_grid_it_was_trained_on():
    pytest.importorskip("tflite_micro", reason="the tflm extra is not installed")
    aware = export.quantization_aware(_model(), _stream(), per_channel=False)
    with pytest.raises(ValueError, match="per-tensor int8 grid"):
        export.to_tflite(aware, _stream(), quantize="int8", per_channel=True)
    # None (the default) takes the model's grid.
    default = export.to_tflite(aware, _stream(), quantize="int8")
    explicit = export.to_tflite(aware, _stream(), quantize="int8", per_channel=False)
    assert default == explicit


def test_bad_inputs():
    with pytest.raises(
        ValueError, match="one \\(low, high\\) with low < high for each of its 2"
    ):
        layers.LSTM(4, state_ranges=[(-1.0, 1.0)])
    with pytest.raises(ValueError, match="low < high"):
        layers.GRU(4, state_ranges=[(1.0, -1.0)])
    with pytest.raises(ValueError, match="tensor_ranges\\['sum'\\] needs"):
        layers.LSTM(4, tensor_ranges={"sum": (2.0, 2.0)})
    with pytest.raises(ValueError, match="weight_quantization must be one of"):
        layers.QuantizedDense(3, weight_quantization="per_row")
    inputs = keras.Input((None, FEATURES))
    dense = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match="no keras_resetfree recurrent layer"):
        export.quantization_aware(dense, _stream())
    bad = _stream()
    bad[5, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        export.quantization_aware(_model(), bad)
    with pytest.raises(ValueError, match="\\(frames, features\\)"):
        export.quantization_aware(_model(), _stream()[None])
    aware = export.quantization_aware(_model(), _stream())
    with pytest.raises(ValueError, match="convert them with quantize='int8'"):
        export.to_tflite(aware, _stream(), quantize="int16x8")
    # The converter crashes on these: refused before it runs.
    spiking = build_model("spiking", FEATURES, 3, 8)
    with pytest.raises(ValueError, match="are SpikingRNN"):
        export.quantization_aware(spiking, _stream())
    inputs = keras.Input((None, FEATURES))
    ssm = keras.Model(
        inputs, layers.SSM(4, state_size=2, state_ranges=[(-2, 2)])(inputs)
    )
    with pytest.raises(ValueError, match="but no tensor_ranges"):
        export.to_tflite(ssm, _stream(), quantize="int8")
