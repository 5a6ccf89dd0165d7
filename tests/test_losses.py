import math

import keras
import numpy as np
import pytest

import keras_resetfree
from keras_resetfree.losses import (
    FrameCrossEntropy,
    LastFrameCrossEntropy,
    ResetFreeLoss,
)
from tests.layer_test_case import input_gradient

C = 5


def _case(seed=0, batch=3, frames=7):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(batch, frames, C)).astype("float32") * 2
    labels = rng.integers(0, C, size=(batch, frames))
    labels[rng.random((batch, frames)) < 0.4] = -1
    return labels.astype("int32"), logits


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("kl_weight", [1.0, 0.3])
def test_gradient_is_p_minus_target(kl_weight):
    labels, logits = _case()
    loss = ResetFreeLoss(kl_weight=kl_weight, from_logits=True, reduction="sum")
    grad = input_gradient(lambda z: loss(labels, z), logits)
    p = _softmax(logits)
    m = (labels >= 0)[..., None]
    y = np.eye(C)[np.maximum(labels, 0)]
    expected = m * (p - y) + (1 - m) * kl_weight * (p - 1.0 / C)
    np.testing.assert_allclose(grad, expected, atol=1e-5)


def test_all_informative_equals_sparse_categorical_crossentropy():
    labels, logits = _case()
    labels = np.abs(labels)
    ours = ResetFreeLoss(from_logits=True)(labels, logits)
    theirs = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        labels, logits
    )
    np.testing.assert_allclose(float(ours), float(theirs), rtol=1e-5)
    probs = _softmax(logits)
    ours = ResetFreeLoss()(labels, probs)
    theirs = keras.losses.SparseCategoricalCrossentropy()(labels, probs)
    np.testing.assert_allclose(float(ours), float(theirs), rtol=1e-4)


def test_all_noise_minimised_by_uniform():
    labels = -np.ones((2, 4), "int32")
    loss = ResetFreeLoss(from_logits=True)
    uniform = float(loss(labels, np.zeros((2, 4, C), "float32")))
    assert abs(uniform) < 1e-6
    rng = np.random.default_rng(1)
    for _ in range(5):
        assert (
            float(loss(labels, rng.normal(size=(2, 4, C)).astype("float32"))) > uniform
        )
    # KL(U || p) for a known p.
    p = np.array([0.5, 0.2, 0.1, 0.1, 0.1], "float32")
    expected = np.mean(np.log((1.0 / C) / p))
    got = float(ResetFreeLoss()(-np.ones((1, 1), "int32"), p[None, None]))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_one_hot_equals_integer_labels():
    labels, logits = _case(seed=2)
    one_hot = np.eye(C)[np.maximum(labels, 0)] * (labels >= 0)[..., None]
    loss = ResetFreeLoss(from_logits=True, kl_weight=0.7)
    np.testing.assert_allclose(
        float(loss(one_hot, logits)), float(loss(labels, logits)), rtol=1e-6
    )


def test_mean_over_frames_and_sample_weight():
    labels, logits = _case(seed=3)
    per_frame = ResetFreeLoss(from_logits=True, reduction="none")(labels, logits)
    assert tuple(per_frame.shape) == labels.shape
    mean = ResetFreeLoss(from_logits=True)(labels, logits)
    np.testing.assert_allclose(
        float(mean), np.mean(keras.ops.convert_to_numpy(per_frame)), rtol=1e-6
    )
    weights = np.array([1.0, 0.0, 2.0], "float32")
    weighted = ResetFreeLoss(from_logits=True)(labels, logits, sample_weight=weights)
    expected = np.mean(keras.ops.convert_to_numpy(per_frame) * weights[:, None])
    np.testing.assert_allclose(float(weighted), expected, rtol=1e-5)


def _peak_reference(labels, logits):
    """The max-pooling term per sequence, from its definition."""
    log_p = np.log(_softmax(logits))
    out = []
    for row, scores in zip(labels, log_p):
        classes = sorted(set(row[row >= 0].tolist()))
        peaks = [scores[row == c, c].max() for c in classes]
        out.append(-np.mean(peaks) if peaks else 0.0)
    return np.array(out)


def test_peak_term_is_the_cross_entropy_at_each_words_best_frame():
    labels, logits = _case(seed=2)
    labels[2] = -1  # a sequence of noise only: no peak term
    plain = ResetFreeLoss(from_logits=True, reduction="none")(labels, logits)
    peaked = ResetFreeLoss(from_logits=True, peak_weight=0.5, reduction="none")(
        labels, logits
    )
    added = keras.ops.convert_to_numpy(peaked) - keras.ops.convert_to_numpy(plain)
    expected = 0.5 * _peak_reference(labels, logits)
    assert expected[:2].min() > 0 and expected[2] == 0
    # Added to every frame of its sequence, so the mean over frames weighs it once.
    np.testing.assert_allclose(added, np.repeat(expected[:, None], 7, 1), atol=1e-5)
    one_hot = np.eye(C)[np.maximum(labels, 0)] * (labels >= 0)[..., None]
    np.testing.assert_allclose(
        float(ResetFreeLoss(from_logits=True, peak_weight=0.5)(one_hot, logits)),
        float(ResetFreeLoss(from_logits=True, peak_weight=0.5)(labels, logits)),
        rtol=1e-5,
    )


def test_peak_term_gradient_reaches_only_each_words_best_frame():
    labels, logits = _case(seed=3)
    grad = {
        w: input_gradient(
            lambda z, w=w: ResetFreeLoss(
                from_logits=True, peak_weight=w, reduction="sum"
            )(labels, z),
            logits,
        )
        for w in (0.0, 1.0)
    }
    extra = np.abs(grad[1.0] - grad[0.0]).sum(-1) > 1e-6
    log_p = np.log(_softmax(logits))
    best = np.zeros_like(extra)
    for b, row in enumerate(labels):
        for c in set(row[row >= 0].tolist()):
            frames = np.flatnonzero(row == c)
            best[b, frames[log_p[b, frames, c].argmax()]] = True
    np.testing.assert_array_equal(extra, best)


def test_extreme_values_stay_finite():
    labels, logits = _case(seed=4)
    loss = ResetFreeLoss(from_logits=True)
    assert np.isfinite(float(loss(labels, np.sign(logits) * 1e4)))
    grad = input_gradient(lambda z: loss(labels, z), np.sign(logits) * 1e4)
    assert np.all(np.isfinite(grad))
    probs = np.zeros_like(logits)
    probs[..., 0] = 1.0  # exact zeros everywhere else
    assert np.isfinite(float(ResetFreeLoss()(labels, probs)))


def test_bad_labels_and_shapes():
    labels, logits = _case()
    loss = ResetFreeLoss(from_logits=True)
    bad = labels.copy()
    bad[0, 0] = C
    with pytest.raises(ValueError, match=r"\[0, 5\).*\[5\]"):
        loss(bad, logits)
    bad[0, 0] = -2
    with pytest.raises(ValueError, match=r"noise label -1.*\[-2\]"):
        loss(bad, logits)
    with pytest.raises(ValueError, match="does not match"):
        loss(labels[:, :5], logits)
    with pytest.raises(ValueError, match="classes"):
        loss(np.zeros((3, 7, C + 1), "float32"), logits)
    for weight in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="kl_weight must be a finite number"):
            ResetFreeLoss(kl_weight=weight)
        with pytest.raises(ValueError, match="peak_weight must be a finite number"):
            ResetFreeLoss(peak_weight=weight)
    with pytest.raises(ValueError, match="noise_label 2 is one of the 5 classes"):
        ResetFreeLoss(from_logits=True, noise_label=2)(labels, logits)


def test_noise_label_above_the_classes_trains_on_every_backend():
    """noise_label = C (classes 0 .. C-1): valid labels are accepted when run eagerly."""
    labels, logits = _case()
    noise_as_c = np.where(labels < 0, C, labels)
    loss = ResetFreeLoss(from_logits=True, noise_label=C)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loss(noise_as_c, logits)),
        keras.ops.convert_to_numpy(ResetFreeLoss(from_logits=True)(labels, logits)),
        rtol=1e-6,
    )
    inputs = keras.Input((None, 4))
    model = keras.Model(
        inputs, keras.layers.Dense(C)(keras_resetfree.layers.GRU(8)(inputs))
    )
    model.compile(optimizer="adam", loss=loss, run_eagerly=True)
    x = np.random.default_rng(0).normal(size=(3, 7, 4)).astype("float32")
    history = model.fit(x, noise_as_c, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_config_round_trip():
    loss = ResetFreeLoss(
        kl_weight=0.25,
        from_logits=True,
        noise_label=-3,
        reduction="sum",
        peak_weight=0.5,
    )
    clone = ResetFreeLoss.from_config(loss.get_config())
    assert clone.get_config() == loss.get_config()
    assert loss.get_config()["kl_weight"] == 0.25
    assert clone.peak_weight == 0.5
    revived = keras.losses.deserialize(
        keras.losses.serialize(FrameCrossEntropy(from_logits=True))
    )
    assert isinstance(revived, FrameCrossEntropy) and revived.kl_weight == 0.0


def test_baselines():
    labels, logits = _case(seed=5)
    frame_ce = FrameCrossEntropy(from_logits=True, reduction="none")(labels, logits)
    frame_ce = keras.ops.convert_to_numpy(frame_ce)
    assert np.all(frame_ce[labels < 0] == 0)
    log_p = np.log(_softmax(logits))
    idx = np.nonzero(labels >= 0)
    np.testing.assert_allclose(frame_ce[idx], -log_p[idx + (labels[idx],)], rtol=1e-5)
    utterance = np.array([1, 0, 4])
    last = LastFrameCrossEntropy(from_logits=True, reduction="none")(utterance, logits)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(last), -log_p[np.arange(3), -1, utterance], rtol=1e-5
    )
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        LastFrameCrossEntropy(from_logits=True)(np.array([1, 0, 9]), logits)


@pytest.mark.parametrize("loss", [ResetFreeLoss, FrameCrossEntropy])
def test_compile_fit_evaluate(loss):
    inputs = keras.Input((None, 4))
    model = keras.Model(
        inputs, keras.layers.Dense(C)(keras_resetfree.layers.GRU(8)(inputs))
    )
    model.compile(optimizer="adam", loss=loss(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 10, 4)).astype("float32")
    y = rng.integers(-1, C, size=(16, 10)).astype("int32")
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    assert np.isfinite(model.evaluate(x, y, verbose=0))


def test_uniform_kl_constant():
    # KL(U || U) = 0 and the constant is log C.
    assert math.isclose(
        float(ResetFreeLoss(from_logits=True)(-np.ones((1, 1)), np.zeros((1, 1, C)))),
        0.0,
        abs_tol=1e-6,
    )


def test_invalid_label_inside_compiled_training_is_not_silent():
    inputs = keras.Input((None, 4))
    model = keras.Model(inputs, keras.layers.Dense(C)(inputs))
    model.compile(optimizer="sgd", loss=ResetFreeLoss(from_logits=True))
    x = np.ones((2, 3, 4), "float32")
    y = np.zeros((2, 3), "int32")
    y[1, 2] = C + 3
    if keras.backend.backend() == "torch":  # eager: the labels are read and rejected
        with pytest.raises(ValueError, match="Frame labels"):
            model.fit(x, y, verbose=0)
    else:  # traced graph: the loss is NaN, not a silently dropped frame
        history = model.fit(x, y, verbose=0)
        assert np.isnan(history.history["loss"][0])
