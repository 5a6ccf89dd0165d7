"""Shared checks that every layer test uses (after keras-hub's `run_layer_test`)."""

import os
import tempfile

import keras
import numpy as np


def gradients(model, x, y_target):
    """Gradients of a squared-error loss w.r.t. the trainable weights, on any backend."""
    backend = keras.backend.backend()
    weights = model.trainable_weights
    x = keras.ops.convert_to_tensor(x)
    y_target = keras.ops.convert_to_tensor(y_target)

    def loss_fn():
        return keras.ops.mean((model(x, training=True) - y_target) ** 2)

    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn()
        return [keras.ops.convert_to_numpy(g) for g in tape.gradient(loss, weights)]
    if backend == "jax":
        import jax

        def pure(values):
            with keras.StatelessScope(state_mapping=list(zip(weights, values))):
                return loss_fn()

        return [np.asarray(g) for g in jax.grad(pure)([w.value for w in weights])]
    if backend == "torch":
        import torch

        model.zero_grad()
        loss = loss_fn()
        grads = torch.autograd.grad(loss, [w.value for w in weights])
        return [g.detach().cpu().numpy() for g in grads]
    raise NotImplementedError(backend)


def run_layer_test(
    layer_cls, init_kwargs, input_data, expected_output_shape, atol=1e-6
):
    """Serialization round trip, symbolic call, eager call, one compiled fit step.

    Returns the eager output (numpy).
    """
    layer = layer_cls(**init_kwargs)

    # Eager call.
    output = layer(input_data)
    outputs = output if isinstance(output, (list, tuple)) else [output]
    assert tuple(outputs[0].shape) == tuple(expected_output_shape), outputs[0].shape
    eager = keras.ops.convert_to_numpy(outputs[0])
    assert np.all(np.isfinite(eager))

    # Serialization round trip: same config, same outputs with the same weights.
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    clone.build(input_data.shape)
    clone.set_weights(layer.get_weights())
    clone_out = clone(input_data)
    clone_out = clone_out[0] if isinstance(clone_out, (list, tuple)) else clone_out
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone_out), eager, atol=atol)
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(revived) is layer_cls and revived.get_config() == config

    # Symbolic call with an unknown number of frames.
    symbolic_in = keras.Input((None, input_data.shape[-1]))
    symbolic = layer_cls(**init_kwargs)(symbolic_in)
    symbolic = symbolic[0] if isinstance(symbolic, (list, tuple)) else symbolic
    assert tuple(symbolic.shape[2:]) == tuple(expected_output_shape[2:])

    # One compiled fit step changes the weights and keeps them finite.
    inputs = keras.Input(input_data.shape[1:])
    fit_layer = layer_cls(**{**init_kwargs, "return_state": False})
    model = keras.Model(inputs, fit_layer(inputs))
    before = [np.copy(w) for w in model.get_weights()]
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", jit_compile=False)
    target = np.ones(expected_output_shape, dtype="float32") * 0.5
    history = model.fit(
        input_data, target, batch_size=input_data.shape[0], epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
    after = model.get_weights()
    assert all(np.all(np.isfinite(w)) for w in after)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    return eager


def run_model_saving_test(model, input_data, atol=0.0):
    """`.keras` save and load give identical outputs."""
    expected = keras.ops.convert_to_numpy(model(input_data))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        restored = keras.saving.load_model(path)
    got = keras.ops.convert_to_numpy(restored(input_data))
    np.testing.assert_allclose(got, expected, atol=atol, rtol=0)
    return restored


def input_gradient(fn, x):
    """Gradient of the scalar `fn(x)` w.r.t. the array `x`, on any backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        v = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(v)
            y = fn(v)
        return tape.gradient(y, v).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda v: fn(v))(x))
    import torch

    v = torch.tensor(x, requires_grad=True)
    fn(v).backward()
    return v.grad.numpy()
