import inspect

import keras
import numpy as np
import pytest

import keras_resetfree
from keras_resetfree import layers
from tests.families import FAMILIES, FEATURES, UNITS, stacked_model
from tests.layer_test_case import gradients, run_layer_test, run_model_saving_test


def _inputs(batch=3, frames=12, seed=0):
    return (
        np.random.default_rng(seed)
        .normal(size=(batch, frames, FEATURES))
        .astype("float32")
    )


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_layer_basics(name):
    layer_cls, kwargs = FAMILIES[name]
    run_layer_test(layer_cls, kwargs, _inputs(), (3, 12, UNITS))


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_return_state_and_initial_state(name):
    layer_cls, kwargs = FAMILIES[name]
    x = _inputs(frames=10)
    layer = layer_cls(**kwargs, return_state=True)
    full, *final = layer(x)
    first, *mid = layer(x[:, :4])
    second, *end = layer(x[:, 4:], initial_state=mid)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(second),
        keras.ops.convert_to_numpy(full[:, 4:]),
        atol=1e-5,
    )
    for a, b in zip(end, final):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), atol=1e-5
        )
    initial = layer.get_initial_state(3)
    assert [tuple(s.shape) for s in initial] == [tuple(s.shape) for s in final]


def test_last_frame_output():
    x = _inputs()
    layer = layers.GRU(UNITS, return_sequences=False)
    assert tuple(layer(x).shape) == (3, UNITS)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_stateful_reset_state_returns_to_initial_state(name):
    layer_cls, kwargs = FAMILIES[name]
    x = _inputs(frames=6)
    layer = layer_cls(**kwargs, stateful=True)
    first = keras.ops.convert_to_numpy(layer(x))
    second = keras.ops.convert_to_numpy(layer(x))
    assert not np.allclose(first, second) or name in ("alif", "lif")
    layer.reset_state()
    for variable, initial in zip(layer.states, layer.get_initial_state(3)):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(variable), keras.ops.convert_to_numpy(initial)
        )
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), first, atol=1e-6)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_cell_works_in_keras_rnn(name):
    layer_cls, kwargs = FAMILIES[name]
    ours = layer_cls(**kwargs)
    x = _inputs()
    expected = keras.ops.convert_to_numpy(ours(x))
    keras_rnn = keras.layers.RNN(ours.cell, return_sequences=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras_rnn(x)), expected, atol=1e-5
    )


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_gradients_flow(name):
    model = stacked_model(name)
    x = _inputs(frames=20) * 3.0
    grads = gradients(model, x, np.zeros((3, 20, UNITS), "float32"))
    for weight, grad in zip(model.trainable_weights, grads):
        assert np.all(np.isfinite(grad)), weight.path
    # Every weight of the first layer (the one gradients must cross the
    # second layer, and spikes, to reach) gets a gradient.
    first = model.layers[1]
    by_path = {w.path: g for w, g in zip(model.trainable_weights, grads)}
    for weight in first.trainable_weights:
        assert np.any(by_path[weight.path] != 0), f"no gradient reaches {weight.path}"


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_model_save_load_identical(name):
    model = stacked_model(name, dense_head=True)
    restored = run_model_saving_test(model, _inputs())
    assert [type(layer) for layer in restored.layers] == [
        type(layer) for layer in model.layers
    ]


def test_matches_keras_own_cells_with_same_weights():
    x = _inputs()
    for ours, theirs in (
        (layers.GRU(UNITS), keras.layers.GRU(UNITS, return_sequences=True)),
        (layers.LSTM(UNITS), keras.layers.LSTM(UNITS, return_sequences=True)),
        (
            layers.VanillaRNN(UNITS),
            keras.layers.SimpleRNN(UNITS, return_sequences=True),
        ),
    ):
        ours.build(x.shape)
        theirs.build(x.shape)
        weights = theirs.get_weights()
        if isinstance(ours, layers.GRU):
            # Keras stores the GRU biases as one (2, 3 units) array.
            weights = [weights[0], weights[1], weights[2][0], weights[2][1]]
        ours.set_weights(weights)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(ours(x)),
            keras.ops.convert_to_numpy(theirs(x)),
            atol=1e-5,
        )


@pytest.mark.parametrize("frames", [1, 7, 16, 64, 101])
def test_ssm_scan_equals_step(frames):
    # Lengths below, at, and across the scan's 16-frame chunks, with padding.
    x = _inputs(frames=frames)
    scan = layers.SSM(UNITS, state_size=6, return_state=True, r_max=0.999)
    out_scan, state_scan = scan(x)
    step = layers.SSM.from_config({**scan.get_config(), "scan": False})
    step.build(x.shape)
    step.set_weights(scan.get_weights())
    initial = [np.random.default_rng(1).normal(size=(3, 12)).astype("float32")]
    out_step, state_step = step(x, initial_state=initial)
    out_scan, state_scan = scan(x, initial_state=initial)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(out_scan),
        keras.ops.convert_to_numpy(out_step),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(state_scan),
        keras.ops.convert_to_numpy(state_step),
        atol=1e-5,
    )


def test_ssm_eigenvalues_inside_unit_circle_for_any_weights():
    layer = layers.SSM(UNITS, state_size=8)
    layer.build((1, 1, FEATURES))
    cell = layer.cell
    for value in (-1e4, -50.0, -20.0, 0.0, 20.0, 1e4):
        cell.nu.assign(np.full((8,), value, "float32"))
        re, im = (keras.ops.convert_to_numpy(t) for t in cell.eigenvalues())
        radius = np.sqrt(re**2 + im**2)
        assert np.all(radius < 1.0) and np.all(np.isfinite(radius)), (value, radius)


def test_spikes_are_binary_and_surrogates_swappable():
    x = _inputs(frames=30) * 3.0
    for surrogate in (
        "multi_gaussian",
        "fast_sigmoid",
        layers.surrogates.FastSigmoid(10.0),
    ):
        layer = layers.SpikingRNN(UNITS, surrogate=surrogate, threshold=0.02)
        spikes = keras.ops.convert_to_numpy(layer(x))
        assert set(np.unique(spikes)) <= {0.0, 1.0}
        assert 0.0 < spikes.mean() < 1.0
        clone = layers.SpikingRNN.from_config(layer.get_config())
        assert type(clone.cell.surrogate) is type(layer.cell.surrogate)
    with pytest.raises(ValueError, match="Unknown surrogate"):
        layers.SpikingRNN(UNITS, surrogate="nope")


def test_surrogate_gradient_values():
    surrogate = layers.surrogates.FastSigmoid(slope=2.0)
    x = np.array([-1.0, 0.0, 0.5], "float32")
    # dS/dx = 1 / (1 + 2 |x|)^2
    expected = 1.0 / (1.0 + 2.0 * np.abs(x)) ** 2
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        v = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(v)
            y = tf.reduce_sum(surrogate(v))
        grad = tape.gradient(y, v).numpy()
    elif backend == "jax":
        import jax

        grad = np.asarray(jax.grad(lambda v: surrogate(v).sum())(x))
    else:
        import torch

        v = torch.tensor(x, requires_grad=True)
        surrogate(v).sum().backward()
        grad = v.grad.numpy()
    np.testing.assert_allclose(grad, expected, rtol=1e-5)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(surrogate(x)), [0.0, 0.0, 1.0]
    )


@pytest.mark.parametrize("name", ["gru", "ssm", "alif"])
def test_bad_inputs_name_layer_and_shapes(name):
    layer_cls, kwargs = FAMILIES[name]
    layer = layer_cls(**kwargs, name="my_layer")
    layer(_inputs())
    with pytest.raises(ValueError, match=r"my_layer.*rank 3.*\(3, 12\)"):
        layer(np.zeros((3, 12), "float32"))
    with pytest.raises(
        ValueError, match=r"my_layer.*\(batch, frames, 6\).*\(3, 12, 5\)"
    ):
        layer(np.zeros((3, 12, 5), "float32"))
    with pytest.raises(ValueError, match=r"my_layer.*floating-point.*int32"):
        layer(np.zeros((3, 12, FEATURES), "int32"))
    with pytest.raises(ValueError, match=r"rank 3"):
        layer_cls(**kwargs)(np.zeros((12, FEATURES), "float32"))


def test_public_api():
    assert keras_resetfree.layers.GRU is layers.GRU
    assert keras_resetfree.Streamer is not None
    with pytest.raises(ValueError, match="units must be positive"):
        layers.GRU(0)


def test_spiking_and_readout_refuse_bad_constants():
    for kwargs, message in (
        ({"dt": 0.0}, "dt must be > 0"),
        ({"dt": -1.0}, "dt must be > 0"),
        ({"threshold": float("nan")}, "threshold must be a finite number > 0"),
        ({"threshold": 0.0}, "threshold must be a finite number > 0"),
    ):
        with pytest.raises(ValueError, match=message):
            layers.SpikingRNN(4, **kwargs)
    with pytest.raises(ValueError, match="dt must be > 0"):
        layers.LeakyReadout(3, dt=0.0)


def test_gru_weights_copy_to_and_from_keras_gru():
    x = np.random.default_rng(0).normal(size=(2, 9, 5)).astype("float32")
    theirs = keras.layers.GRU(6, return_sequences=True)
    ours = layers.GRU(6)
    theirs.build((None, None, 5))
    ours.build((None, None, 5))
    ours.set_weights(theirs.get_weights())  # Keras's layout: 3 arrays
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours(x)),
        keras.ops.convert_to_numpy(theirs(x)),
        atol=1e-5,
    )
    fresh = layers.GRU(6)
    fresh.build((None, None, 5))
    theirs.set_weights(fresh.keras_weights())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(fresh(x)),
        keras.ops.convert_to_numpy(theirs(x)),
        atol=1e-5,
    )


def test_wrong_number_of_initial_states_and_empty_sequences():
    x = np.zeros((1, 4, 3), "float32")
    ssm = layers.SSM(4, state_size=2)
    state = np.zeros((1, 4), "float32")
    with pytest.raises(
        ValueError, match="has 1 state tensor\\(s\\); initial_state holds 2"
    ):
        ssm(x, initial_state=[state, state])
    with pytest.raises(ValueError, match="0 frames"):
        layers.GRU(3)(np.zeros((1, 0, 3), "float32"))


LAYER_CLASSES = [
    layers.VanillaRNN,
    layers.GRU,
    layers.LSTM,
    layers.SSM,
    layers.SpikingRNN,
    layers.LeakyReadout,
]


@pytest.mark.parametrize("layer_cls", LAYER_CLASSES, ids=lambda c: c.__name__)
def test_constructor_signature_shows_the_options(layer_cls):
    parameters = inspect.signature(layer_cls).parameters
    assert list(parameters)[0] == "units"
    assert {"return_sequences", "return_state", "stateful", "unroll"} <= set(parameters)
    assert not any(p.kind is p.VAR_POSITIONAL for p in parameters.values())
    # Every cell argument is in the layer's signature, with the cell's default.
    cells = {layers.SpikingRNN: layers.ALIFCell}
    cell_parameters = inspect.signature(cells.get(layer_cls, layer_cls.cell_class))
    for name, parameter in cell_parameters.parameters.items():
        if name in ("self", "kwargs", "beta", "tau_adp_initializer"):
            continue
        assert name in parameters, name
        assert parameters[name].default == parameter.default, name


DENSE_OPTIONS = [
    (layers.VanillaRNN, keras.layers.SimpleRNN, {"activation": "relu"}),
    (
        layers.GRU,
        keras.layers.GRU,
        {"activation": "relu", "recurrent_activation": "hard_sigmoid"},
    ),
    (
        layers.LSTM,
        keras.layers.LSTM,
        {"activation": "softsign", "recurrent_activation": "hard_sigmoid"},
    ),
]


@pytest.mark.parametrize("ours_cls, theirs_cls, options", DENSE_OPTIONS)
def test_activations_match_keras_layers(ours_cls, theirs_cls, options):
    x = _inputs()
    ours = ours_cls(UNITS, **options)
    theirs = theirs_cls(UNITS, return_sequences=True, **options)
    ours.build(x.shape)
    theirs.build(x.shape)
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours(x)),
        keras.ops.convert_to_numpy(theirs(x)),
        atol=1e-5,
    )


@pytest.mark.parametrize("name", ["vanilla_rnn", "gru", "lstm", "alif"])
def test_dropout_acts_in_training_only_one_mask_per_sequence(name):
    layer_cls, kwargs = FAMILIES[name]
    x = _inputs(batch=4, frames=16)
    plain = layer_cls(**kwargs)
    dropping = layer_cls(**kwargs, dropout=0.5, recurrent_dropout=0.5, seed=1)
    plain.build(x.shape)
    dropping.build(x.shape)
    dropping.set_weights(plain.get_weights())
    inference = keras.ops.convert_to_numpy(dropping(x))
    np.testing.assert_allclose(
        inference, keras.ops.convert_to_numpy(plain(x)), atol=1e-6
    )
    assert not np.allclose(
        keras.ops.convert_to_numpy(dropping(x, training=True)), inference, atol=1e-3
    )
    # Input dropout alone with the same mask at every frame: a frame of zeros
    # then a frame of ones shows which features the mask kept.
    probe = layer_cls(**kwargs, dropout=0.5, seed=2)
    probe.build(x.shape)
    kept = np.ones((1, 2, FEATURES), "float32")
    mask = probe.cell.dropout_masks(keras.ops.convert_to_tensor(kept), [None])[0]
    mask = keras.ops.convert_to_numpy(mask)
    assert set(np.unique(mask)) <= {0.0, 2.0} and mask.shape == (1, FEATURES)


def test_dropout_layers_fit_save_and_stream(tmp_path):
    x = _inputs(batch=4, frames=10)
    inputs = keras.Input((None, FEATURES))
    y = layers.GRU(UNITS, dropout=0.2, recurrent_dropout=0.3, seed=3)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(y))
    model.compile(optimizer="adam", loss="mse")
    before = keras.ops.convert_to_numpy(model(x))
    model.fit(x, np.zeros((4, 10, 2), "float32"), epochs=1, verbose=0)
    after = keras.ops.convert_to_numpy(model(x))
    assert np.all(np.isfinite(after)) and not np.allclose(before, after)
    streamed = keras_resetfree.Streamer(model, batch_size=4).run(x, chunk_size=3)
    np.testing.assert_allclose(streamed, after, atol=1e-5)
    model.save(tmp_path / "dropout.keras")
    loaded = keras.saving.load_model(tmp_path / "dropout.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), after, atol=1e-6)


def test_regularizers_and_constraints():
    x = _inputs()
    layer = layers.LSTM(
        UNITS,
        kernel_regularizer="l2",
        recurrent_regularizer=keras.regularizers.L1(0.01),
        bias_regularizer="l2",
        kernel_constraint="non_neg",
        recurrent_constraint=keras.constraints.MaxNorm(0.5),
        bias_constraint="non_neg",
    )
    inputs = keras.Input((None, FEATURES))
    model = keras.Model(inputs, layer(inputs))
    assert len(model.losses) == 3
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    model.fit(x, np.ones((3, 12, UNITS), "float32"), epochs=1, verbose=0)
    kernel, recurrent_kernel, bias = layer.get_weights()
    assert kernel.min() >= 0 and bias.min() >= 0
    assert np.sqrt((recurrent_kernel**2).sum(axis=0)).max() <= 0.5 + 1e-5
    clone = layers.LSTM.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert isinstance(clone.cell.recurrent_constraint, keras.constraints.MaxNorm)


def test_bad_layer_options():
    with pytest.raises(ValueError, match="dropout must be in \\[0, 1\\)"):
        layers.GRU(4, dropout=1.0)
    with pytest.raises(ValueError, match="recurrent_dropout must be in"):
        layers.LSTM(4, recurrent_dropout=-0.1)
    with pytest.raises(ValueError, match="beta sets the threshold adaptation"):
        layers.SpikingRNN(4, adaptive=False, beta=2.0)


def test_leaky_rnn_time_constants():
    x = _inputs(batch=2, frames=30)
    layer = layers.VanillaRNN(6, time_constants=(1, 40))
    y = keras.ops.convert_to_numpy(layer(x))
    tau = keras.ops.convert_to_numpy(layer.cell.tau)
    np.testing.assert_allclose(tau, np.geomspace(1, 40, 6), rtol=1e-5)
    # The state is a convex mix of the last state and tanh: inside (-1, 1).
    assert np.abs(y).max() < 1.0
    # The slowest unit moves less from frame to frame than the fastest.
    steps = np.abs(np.diff(y, axis=1)).mean(axis=(0, 1))
    assert steps[-1] < 0.25 * steps[0]
    # With every time constant at one frame it is not the plain cell (alpha
    # = exp(-1) keeps a part of the last state), but the plain cell has no tau.
    plain = layers.VanillaRNN(6)
    plain(x)
    assert not hasattr(plain.cell, "tau") or plain.cell.tau is None
    again = layers.VanillaRNN.from_config(layer.get_config())
    assert again.cell.time_constants == (1.0, 40.0)
    for bad in ((0.5, 10), (10, 5), (1, float("inf")), 3, ("a", 2)):
        with pytest.raises(ValueError, match="time_constants must be"):
            layers.VanillaRNN(4, time_constants=bad)


def test_temporal_conv_is_a_causal_convolution_whole_or_by_frame():
    x = _inputs(batch=2, frames=9)
    layer = layers.TemporalConv(5, kernel_size=3, activation="linear")
    y = keras.ops.convert_to_numpy(layer(x))
    kernel = keras.ops.convert_to_numpy(layer.cell.kernel)
    bias = keras.ops.convert_to_numpy(layer.cell.bias)
    padded = np.concatenate([np.zeros((2, 2, FEATURES), "float32"), x], axis=1)
    windows = np.concatenate([padded[:, i : i + 9] for i in range(3)], axis=-1)
    np.testing.assert_allclose(y, windows @ kernel + bias, atol=1e-5)
    # The time loop (one frame at a time) gives the same as the batched path.
    layer.scan = False
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), y, atol=1e-5)
    # The state is the last kernel_size - 1 input frames.
    _, state = layers.TemporalConv(5, kernel_size=3, return_state=True)(x)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(state), x[:, -2:].reshape(2, -1), atol=1e-6
    )
    # An unbuilt cell in Keras's own RNN: its state width comes once built.
    cell = layers.TemporalConvCell(5, kernel_size=3, activation="linear")
    theirs = keras.layers.RNN(cell, return_sequences=True)
    theirs(x)
    cell.set_weights(layer.cell.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(theirs(x)), y, atol=1e-5)
    with pytest.raises(ValueError, match="kernel_size must be >= 2"):
        layers.TemporalConv(4, kernel_size=1)
    with pytest.raises(ValueError, match="filters must be positive"):
        layers.TemporalConv(0)
