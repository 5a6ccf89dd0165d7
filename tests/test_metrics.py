import functools
import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_resetfree import metrics


def _case():
    labels = np.array([[-1, 2, 2, 2, -1, 0, 0, -1, 1, 1]], "int32")
    predicted = np.array([[0, 2, 1, 2, 1, 0, 1, -1, 1, 1]])
    probs = np.full((1, 10, 3), 0.1, "float32")
    for t, p in enumerate(predicted[0]):
        probs[0, t, p] = 0.8
    probs[0, 7] = 1 / 3  # a uniform noise frame
    return labels, probs


def test_numpy_functions():
    labels, probs = _case()
    # informative frames: 1,2,3,5,6,8,9 -> correct at 1,3,5,8,9
    assert metrics.frame_accuracy(labels, probs) == pytest.approx(5 / 7)
    # decision frames: 3 (label 2, predicted 2) and 6 (label 0, predicted 1);
    # the segment at 8-9 reaches the end of the sequence and is not counted
    assert metrics.decision_accuracy(labels, probs) == pytest.approx(1 / 2)
    assert metrics.noise_confidence(labels, probs) == pytest.approx(
        (0.8 + 0.8 + 1 / 3) / 3
    )
    with pytest.raises(ValueError, match="frames of outputs"):
        metrics.frame_accuracy(labels[:, :5], probs)


@pytest.mark.parametrize("one_hot", [False, True])
def test_keras_metrics_match_functions(one_hot):
    labels, probs = _case()
    y_true = labels
    if one_hot:
        y_true = np.eye(3)[np.maximum(labels, 0)] * (labels >= 0)[..., None]
    for metric, expected in (
        (metrics.FrameAccuracy(), 5 / 7),
        (metrics.DecisionAccuracy(), 1 / 2),
        (metrics.NoiseConfidence(from_logits=False), (0.8 + 0.8 + 1 / 3) / 3),
    ):
        metric.update_state(y_true, probs)
        assert float(metric.result()) == pytest.approx(expected, rel=1e-5)
        metric.update_state(y_true, probs)  # accumulates: same ratio
        assert float(metric.result()) == pytest.approx(expected, rel=1e-5)
        metric.reset_state()
        assert float(metric.result()) == 0.0
        clone = type(metric).from_config(metric.get_config())
        assert clone.get_config() == metric.get_config()


def test_metrics_in_compile_and_fit():
    from keras_resetfree import ResetFreeLoss, layers

    inputs = keras.Input((None, 4))
    model = keras.Model(inputs, keras.layers.Dense(3)(layers.GRU(8)(inputs)))
    model.compile(
        optimizer="adam",
        loss=ResetFreeLoss(from_logits=True),
        metrics=[
            metrics.FrameAccuracy(),
            metrics.DecisionAccuracy(),
            metrics.NoiseConfidence(),
        ],
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 12, 4)).astype("float32")
    y = np.repeat(rng.integers(-1, 3, size=(8, 4)), 3, axis=1).astype("int32")
    history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    for name in ("acc_f", "acc_p", "noise_confidence"):
        assert 0.0 <= history.history[name][0] <= 1.0
    logits = keras.ops.convert_to_numpy(model(x))
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    assert result["acc_f"] == pytest.approx(metrics.frame_accuracy(y, probs), abs=1e-6)
    assert result["acc_p"] == pytest.approx(
        metrics.decision_accuracy(y, probs), abs=1e-6
    )
    assert result["noise_confidence"] == pytest.approx(
        metrics.noise_confidence(y, probs), abs=1e-5
    )


def test_detection_scoring():
    frames, classes = 1000, 3
    probs = np.full((frames, classes), 1 / classes)
    segments = np.array([[100, 140, 0], [300, 340, 1], [600, 640, 2]])
    probs[110:140] = [0.9, 0.05, 0.05]  # hit
    probs[700:720] = [0.05, 0.9, 0.05]  # false alarm, no segment there
    probs[320:330] = [0.05, 0.05, 0.9]  # wrong class inside segment 2: a false alarm
    scores = metrics.score_detections(
        probs, segments, frame_rate=50, smoothing_frames=3
    )
    assert (scores.hits, scores.misses, scores.false_alarms) == (1, 2, 2)
    assert scores.hours == pytest.approx(1000 / 50 / 3600)
    assert scores.false_alarms_per_hour == pytest.approx(2 / scores.hours)
    assert scores.hit_rate == pytest.approx(1 / 3)
    # The refractory time merges a detection that stays high into one.
    assert len(metrics.detect(probs, smoothing_frames=3, refractory_frames=50)) == 3
    assert len(metrics.detect(probs, smoothing_frames=3, refractory_frames=5)) > 3
    with pytest.raises(ValueError, match="frames, classes"):
        metrics.detect(probs[None])


@functools.cache
def _match_every_segment():
    """The plain scan of every segment per detection that benchmarks/bench_detection.py
    times match_detections against."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_detection.py"
    spec = importlib.util.spec_from_file_location("bench_detection", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.match_every_segment


@pytest.mark.parametrize("overlapping", [False, True])
def test_match_detections_equals_checking_every_segment(overlapping):
    rng = np.random.default_rng(5)
    for trial in range(20):
        n = int(rng.integers(1, 60))
        if overlapping:  # rows in any order, spans that overlap and nest
            starts = rng.integers(0, 3000, n)
            ends = starts + rng.integers(0, 300, n)
        else:  # a stream: segments in order, gaps between them
            ends = np.cumsum(rng.integers(20, 120, n))
            starts = ends - rng.integers(1, 20, n)
        segments = np.stack([starts, ends, rng.integers(0, 3, n)], axis=1)
        frames = np.sort(
            rng.integers(0, int(ends.max()) + 60, int(rng.integers(0, 200)))
        )
        detections = [
            (int(f), int(c)) for f, c in zip(frames, rng.integers(0, 3, len(frames)))
        ]
        tolerance = int(rng.integers(0, 40))
        got = metrics.match_detections(detections, segments, 1.0, tolerance)
        want = _match_every_segment()(detections, segments, tolerance)
        assert (got.hits, got.false_alarms) == want, trial
        assert got.hits + got.misses == n
    assert metrics.match_detections([(3, 0)], np.zeros((0, 3)), 1.0).false_alarms == 1


def test_stream_decision_accuracy():
    outputs = np.zeros((12, 2))
    outputs[:, 1] = 1.0  # predicts class 1 everywhere...
    outputs[4, :] = [2.0, 0.0]  # ...but class 0 at frame 4
    segments = np.array([[2, 7, 0], [8, 11, 1]])
    mask = np.zeros(12)
    mask[[3, 4]] = 1  # segment 1's last informative frame is 4; segment 2 has none
    assert metrics.segment_decision_frames(segments, mask).tolist() == [4, 10]
    assert metrics.stream_decision_accuracy(outputs, segments, mask) == 1.0
    assert metrics.segment_decision_frames(segments).tolist() == [6, 10]
    assert metrics.stream_decision_accuracy(outputs, segments) == 0.5
