"""Scoring a model on a never-reset stream, as keyword spotters are scored.

The rules, used by every command, benchmark and document of the project:

- acc_f: argmax accuracy over informative frames (label != noise label).
- acc_p: the argmax at each segment's *decision frame*: its last frame where
  the stream's mask, computed from the input as a device would, is 1 (the
  segment's last frame when the mask marks none of it). Segments of noise
  classes (`_silence_`) are left out: they have no decision frame.
- segment accuracy: the argmax of the mean posterior over the segment's
  frames, over every label; when the stream has a noise class (`_silence_`),
  a segment whose mean posterior stays below the silence threshold (the
  spotter's, calibrated on the validation stream; default 2 / classes: no
  class twice as likely as uniform) is called silence.
- detection: the causal detector of `keras_resetfree.metrics.detect`
  (moving average of `smoothing` frames, threshold, refractory period); it
  never reports `ignore_classes` (`_unknown_`, `_silence_`). A keyword
  segment detected as its class within it (or 25 frames after) is a hit;
  any other detection is a false alarm. False-reject rate = misses /
  keyword segments; false alarms per hour over the whole stream.
- trade-off: the false-reject rate against false alarms per hour, as the
  threshold sweeps; `frr_at` reads the lowest false-reject rate at or below
  a rate of false alarms.
"""

import json
from dataclasses import asdict, dataclass

import keras
import numpy as np

from keras_resetfree import metrics
from keras_resetfree.streaming import Streamer

# Thresholds of the trade-off sweep: dense near 1, where low false-alarm
# rates are found.
THRESHOLDS = np.unique(
    np.round(
        np.concatenate([np.linspace(0.2, 0.9, 36), 1.0 - np.geomspace(0.1, 1e-4, 40)]),
        6,
    )
)
REPORT_RATES = (0.5, 1.0, 5.0, 10.0)


def ignored_classes(label_names):
    """Classes a detector never reports: names like `_unknown_` and `_silence_`."""
    return tuple(
        i
        for i, name in enumerate(label_names)
        if len(name) > 1 and name.startswith("_") and name.endswith("_")
    )


def stream_logits(
    model, features, reset_frames=(), chunk=250, pieces=1, streamer=None, verbose=0
):
    """Per-frame logits of `features` run without reset, or reset at `reset_frames`.

    Without resets: a `Streamer` in chunks of `chunk` frames, never reset.
    With `pieces` > 1, the stream is cut into that many consecutive pieces
    that run side by side as one batch, each a never-reset stream of its own
    (faster; for validation during training, not for the final scores).
    `streamer`: a `Streamer` of the model with `batch_size=pieces` to reuse
    (it is reset first), so repeated calls do not retrace it.
    With resets: every piece between two resets starts from the initial
    state, so the pieces run side by side as one batch, each padded at its
    end (a causal model's outputs do not depend on what follows).
    `verbose`: a progress bar (1) or line (2) over the frames, as in `predict`.
    """
    features = np.asarray(features, "float32")
    bounds = sorted(
        {0, len(features), *(int(f) for f in reset_frames if 0 < f < len(features))}
    )
    if len(bounds) == 2:
        pieces = max(1, min(int(pieces), len(features)))
        length = -(-len(features) // pieces)
        # Whole chunks only: one compiled step serves every call.
        length = -(-length // chunk) * chunk
        batch = np.zeros((pieces * length, features.shape[1]), "float32")
        batch[: len(features)] = features
        if streamer is None:
            streamer = Streamer(model, batch_size=pieces)
        streamer.reset()
        logits = streamer.run(
            batch.reshape(pieces, length, -1), chunk_size=chunk, verbose=verbose
        )
        return np.asarray(logits).reshape(pieces * length, -1)[: len(features)]
    lengths = np.diff(bounds)
    batch = np.zeros((len(lengths), lengths.max(), features.shape[1]), features.dtype)
    for row, (a, n) in enumerate(zip(bounds[:-1], lengths)):
        batch[row, :n] = features[a : a + n]
    logits = keras.ops.convert_to_numpy(
        model.predict(batch, batch_size=256, verbose=verbose)
    )
    return np.concatenate([logits[row, :n] for row, n in enumerate(lengths)])


# "Sure" frames of `agreement(..., min_probability=SURE)`: the reference's top
# posterior at least this. The loss pulls ambiguous frames towards the uniform
# posterior, where the two best logits are a rounding step apart and the argmax
# says little; a detector fires on posteriors far above it.
SURE = 0.5


def agreement(reference, got, stream, min_probability=0.0):
    """Argmax agreement of two `(frames, classes)` logits on `stream`'s informative frames.

    With `min_probability`, only on the informative frames where the
    reference's top posterior (softmax of its logits) is at least that.
    """
    reference, got = np.asarray(reference), np.asarray(got)
    if reference.shape != got.shape:
        raise ValueError(
            f"agreement needs two outputs of the same shape, got {reference.shape} "
            f"and {got.shape}."
        )
    if not 0.0 <= min_probability < 1.0:
        raise ValueError(f"min_probability must be in [0, 1), got {min_probability}.")
    frames = np.asarray(stream.labels) != stream.noise_label
    if min_probability > 0:
        frames &= probabilities(reference).max(-1) >= min_probability
    if not frames.any():
        return float("nan")
    return float(np.mean(got.argmax(-1)[frames] == reference.argmax(-1)[frames]))


@dataclass
class SharedDetections:
    """How two runs of a spotter (float and int8, say) agree on its decisions."""

    reference: int  # detections of the reference run
    got: int  # detections of the other run
    shared: int  # of them, the same class within `tolerance` frames of each other

    @property
    def share(self):
        """Shared detections over all distinct ones (1.0 when both made none)."""
        distinct = self.reference + self.got - self.shared
        return self.shared / distinct if distinct else 1.0


def shared_detections(reference_probs, got_probs, stream, detector, tolerance=5):
    """The detections that `detector` makes on both `(frames, classes)` posteriors.

    A detection of the reference run and one of the other run are shared
    when they report the same class within `tolerance` frames of each other
    (each pairs at most once, earliest first).
    """
    if np.shape(reference_probs) != np.shape(got_probs):
        raise ValueError(
            f"shared_detections needs two outputs of the same shape, got "
            f"{np.shape(reference_probs)} and {np.shape(got_probs)}."
        )
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0 frames, got {tolerance}.")
    ignore = ignored_classes(stream.label_names)
    found = [
        metrics.detect(
            p, detector.threshold, detector.smoothing, detector.refractory, ignore
        )
        for p in (reference_probs, got_probs)
    ]
    unpaired = list(found[1])
    shared = 0
    for frame, label in found[0]:
        for i, (other, other_label) in enumerate(unpaired):
            if other_label == label and abs(other - frame) <= tolerance:
                del unpaired[i]
                shared += 1
                break
    return SharedDetections(len(found[0]), len(found[1]), shared)


def probabilities(logits):
    """Softmax of `(frames, classes)` logits, as float64 numpy."""
    logits = np.asarray(logits, np.float64)
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def segment_predictions(probs, stream, silence_threshold=None):
    """The predicted label of every segment: argmax of its mean posterior (see the module)."""
    segments = np.asarray(stream.segments).reshape(-1, 3)
    classes = probs.shape[-1]
    means = (
        np.stack([probs[a:b].mean(0) for a, b, _ in segments])
        if len(segments)
        else np.zeros((0, classes))
    )
    noise = [c for c in stream.noise_classes if c < classes]
    if not noise:
        return means.argmax(-1)
    threshold = 2.0 / classes if silence_threshold is None else silence_threshold
    candidates = means.copy()
    candidates[:, noise] = -np.inf
    predicted = candidates.argmax(-1)
    quiet = candidates.max(-1) < threshold
    predicted[quiet] = noise[0]
    return predicted


@dataclass
class Detector:
    """The decision rule a deployed spotter runs (and the sketch's settings)."""

    threshold: float = 0.5
    smoothing: int = 5
    refractory: int = 50
    # Segment accuracy's "silence" below this mean posterior (None: 2 / classes).
    silence_threshold: float = None

    def to_json(self):
        return json.dumps(asdict(self))


def _keyword_segments(stream, ignore):
    segments = np.asarray(stream.segments).reshape(-1, 3)
    skip = set(ignore) | set(stream.noise_classes)
    return segments[~np.isin(segments[:, 2], list(skip))]


def detections(probs, stream, detector, ignore=None):
    """`DetectionScores` of `detector` on the stream's keyword segments."""
    ignore = ignored_classes(stream.label_names) if ignore is None else tuple(ignore)
    found = metrics.detect(
        probs, detector.threshold, detector.smoothing, detector.refractory, ignore
    )
    hours = len(probs) / stream.frame_rate / 3600.0
    return metrics.match_detections(found, _keyword_segments(stream, ignore), hours)


# Where a false alarm fired (`false_alarm_sources`).
FALSE_ALARM_SOURCES = ("another keyword", "an unknown word", "a silence clip", "noise")


def keyword_peaks(probs, stream, smoothing=5, tolerance_frames=25, ignore=None):
    """The highest smoothed posterior of each keyword segment's own word, `(keywords,)`.

    Over the segment and the `tolerance_frames` after it, where a detection
    of it counts as a hit, with the detector's moving average of `smoothing`
    frames: the threshold a detector must stay below to find the word (if
    nothing fires first). How sure a model is of the words it recognises.
    """
    ignore = ignored_classes(stream.label_names) if ignore is None else tuple(ignore)
    smoothed = metrics.moving_average(probs, smoothing)
    return np.array(
        [
            smoothed[a : min(b + tolerance_frames, len(smoothed)), c].max()
            for a, b, c in _keyword_segments(stream, ignore)
        ]
    )


def false_alarm_sources(probs, stream, detector, tolerance_frames=25):
    """Counts of `detector`'s false alarms by what the stream held where each fired.

    `{source: count}` over `FALSE_ALARM_SOURCES`: inside another keyword
    segment (or up to `tolerance_frames` after it: a wrong word, or the
    same word found twice), inside an `_unknown_` one, inside a segment of
    a noise class (`_silence_`), or in the noise between segments.
    """
    ignore = ignored_classes(stream.label_names)
    found = detections(probs, stream, detector, ignore)
    segments = np.asarray(stream.segments).reshape(-1, 3)
    order = np.argsort(segments[:, 0], kind="stable")
    starts = segments[order, 0]
    counts = dict.fromkeys(FALSE_ALARM_SOURCES, 0)
    for frame, _ in found.false_alarm_detections:
        # The latest segment starting at or before the frame, if it spans it.
        k = int(np.searchsorted(starts, frame, side="right")) - 1
        row = segments[order[k]] if k >= 0 else None
        if row is None or frame >= row[1] + tolerance_frames:
            counts["noise"] += 1
        elif row[2] in stream.noise_classes:
            counts["a silence clip"] += 1
        elif row[2] in ignore:
            counts["an unknown word"] += 1
        else:
            counts["another keyword"] += 1
    return counts


def tradeoff(
    probs, stream, smoothing=5, refractory=50, thresholds=THRESHOLDS, ignore=None
):
    """The detection error trade-off: `(thresholds, false-reject rates, false alarms per hour)`."""
    ignore = ignored_classes(stream.label_names) if ignore is None else tuple(ignore)
    keywords = _keyword_segments(stream, ignore)
    hours = len(probs) / stream.frame_rate / 3600.0
    best, peak = metrics.smoothed_posteriors(probs, smoothing, ignore)
    frr, fa = [], []
    for threshold in thresholds:
        found = metrics.fire(best, peak, threshold, refractory)
        score = metrics.match_detections(found, keywords, hours)
        total = score.hits + score.misses
        frr.append(score.misses / total if total else float("nan"))
        fa.append(score.false_alarms_per_hour)
    return np.asarray(thresholds, float), np.asarray(frr), np.asarray(fa)


def frr_at(curve, rate):
    """The lowest false-reject rate of `curve` (from `tradeoff`) at <= `rate` false alarms
    per hour (1.0 when no threshold gets there)."""
    _, frr, fa = curve
    ok = fa <= rate
    return float(frr[ok].min()) if ok.any() else 1.0


def calibrate(
    probs,
    stream,
    target_false_alarms_per_hour=5.0,
    smoothings=(1, 3, 5, 10, 20),
    refractory=50,
    ignore=None,
):
    """The `Detector` (threshold, smoothing) with the lowest false-reject rate at or below the
    target rate of false alarms on `stream` (the validation stream, never the test).

    `probs` and `stream` may also be lists, one entry per condition (for
    example the same speakers at 0-20 dB and at 20-40 dB SNR): the detector
    then keeps the target rate on every condition, and its false-reject rate
    is over the keywords of all of them. The silence threshold of segment
    accuracy is calibrated on the first condition: put the streams the
    model is scored on (the task's own SNR) first.
    """
    if (
        not np.isfinite(target_false_alarms_per_hour)
        or target_false_alarms_per_hour < 0
    ):
        raise ValueError(
            f"target_false_alarms_per_hour must be >= 0, got {target_false_alarms_per_hour}."
        )
    conditions = _conditions(probs, stream)
    keywords = [
        len(
            _keyword_segments(
                s, ignored_classes(s.label_names) if ignore is None else ignore
            )
        )
        for _, s in conditions
    ]
    best = None
    for smoothing in smoothings:
        curves = [
            tradeoff(p, s, smoothing, refractory, ignore=ignore) for p, s in conditions
        ]
        thresholds = curves[0][0]
        # Misses over every condition's keywords; the worst condition's false alarms.
        frr = sum(np.nan_to_num(c[1]) * n for c, n in zip(curves, keywords)) / max(
            sum(keywords), 1
        )
        fa = np.max([c[2] for c in curves], axis=0)
        ok = np.flatnonzero(fa <= target_false_alarms_per_hour)
        if not len(ok):
            continue
        # The lowest miss rate; among equals, the highest threshold (more margin).
        pick = ok[np.lexsort((-thresholds[ok], frr[ok]))[0]]
        candidate = (frr[pick], -thresholds[pick], int(smoothing))
        if best is None or candidate < best[0]:
            best = (
                candidate,
                Detector(float(thresholds[pick]), int(smoothing), int(refractory)),
            )
    detector = (
        best[1]
        if best is not None
        else Detector(float(THRESHOLDS[-1]), int(max(smoothings)), int(refractory))
    )
    detector.silence_threshold = calibrate_silence(*conditions[0])
    return detector


def _conditions(probs, stream):
    """`[(probs, stream), ...]` from one stream or from equal-length lists of them."""
    if not isinstance(stream, list | tuple):
        return [(probs, stream)]
    if not isinstance(probs, list | tuple) or len(probs) != len(stream) or not stream:
        raise ValueError(
            "Calibrating on several conditions takes one probs array per stream: got "
            f"{len(probs) if isinstance(probs, list | tuple) else 'one array'} for "
            f"{len(stream)} streams."
        )
    return list(zip(probs, stream))


def calibrate_silence(probs, stream):
    """The silence threshold of segment accuracy that scores best on `stream` (the
    validation stream), or None when it has no noise class."""
    if not stream.noise_classes or not len(stream.segments):
        return None
    classes = probs.shape[-1]
    grid = np.round(np.linspace(1.0 / classes, 0.6, 50), 4)
    truth = np.asarray(stream.segments)[:, 2]
    accuracy = [np.mean(segment_predictions(probs, stream, t) == truth) for t in grid]
    return float(grid[int(np.argmax(accuracy))])


def score(
    probs, stream, detector=None, silence_threshold=None, rates=REPORT_RATES, curve=True
):
    """Every score of the module on one never-reset stream; `probs` `(frames, classes)`.

    `silence_threshold` (default the detector's) decides silence in segment accuracy.

    Returns a dict: `acc_f`, `acc_p`, `segment_accuracy`, `noise_confidence`,
    and for audio streams (with a frame rate) the detector's `hit_rate`,
    `false_reject_rate`, `false_alarms_per_hour`, `hours`, and with `curve`
    the trade-off's `frr_at_<rate>` for each rate.
    """
    probs = np.asarray(probs, np.float64)
    segments = np.asarray(stream.segments).reshape(-1, 3)
    informative = segments[~np.isin(segments[:, 2], list(stream.noise_classes))]
    silence = silence_threshold
    if silence is None and detector is not None:
        silence = detector.silence_threshold
    result = {
        "acc_f": metrics.frame_accuracy(stream.labels, probs, stream.noise_label),
        "acc_p": metrics.stream_decision_accuracy(probs, informative, stream.mask),
        "segment_accuracy": float(
            np.mean(segment_predictions(probs, stream, silence) == segments[:, 2])
        )
        if len(segments)
        else float("nan"),
        "noise_confidence": metrics.noise_confidence(
            stream.labels, probs, stream.noise_label
        ),
    }
    if stream.frame_rate:
        detector = detector or Detector()
        found = detections(probs, stream, detector)
        result.update(
            hit_rate=found.hit_rate,
            false_reject_rate=1.0 - found.hit_rate,
            false_alarms_per_hour=found.false_alarms_per_hour,
            hours=found.hours,
        )
        if curve:
            trade = tradeoff(probs, stream, detector.smoothing, detector.refractory)
            for rate in rates:
                result[f"frr_at_{rate:g}"] = frr_at(trade, rate)
    return result


def score_model(model, stream, detector=None, chunk=250, **kwargs):
    """`score` of a model's outputs on `stream`, run through a `Streamer`, never reset."""
    return score(
        probabilities(stream_logits(model, stream.features, chunk=chunk)),
        stream,
        detector,
        **kwargs,
    )


def plot_tradeoff(curves, path, title=None):
    """Saves a PNG of false-reject rate against false alarms per hour (log x), one line per
    `name: curve` of `curves`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, (_, frr, fa) in curves.items():
        order = np.argsort(fa)
        ax.plot(np.maximum(fa[order], 0.1), 100 * frr[order], marker=".", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("false alarms per hour")
    ax.set_ylabel("false-reject rate (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
