"""Keyword-spotting detection scoring on a long stream: hits, misses, false alarms per hour."""

from dataclasses import dataclass, field

import numpy as np


@dataclass
class DetectionScores:
    """Counts of a detector on a stream.

    Attributes:
        hits: segments with a detection of their class inside them.
        misses: segments with none.
        false_alarms: detections that hit no segment of their class.
        hours: duration of the stream.
        detections: `(frame, class)` of every detection.
        false_alarm_detections: `(frame, class)` of the false alarms.
    """

    hits: int
    misses: int
    false_alarms: int
    hours: float
    detections: list
    false_alarm_detections: list = field(default_factory=list)

    @property
    def hit_rate(self):
        total = self.hits + self.misses
        return self.hits / total if total else float("nan")

    @property
    def false_alarms_per_hour(self):
        return self.false_alarms / self.hours if self.hours else float("nan")


def detect(
    probs, threshold=0.5, smoothing_frames=5, refractory_frames=50, ignore_classes=()
):
    """Turns per-frame posteriors into detections, causally.

    The posteriors are averaged over the last `smoothing_frames` frames; a
    detection of class c fires at frame t when that average first exceeds
    `threshold`, and no other detection fires within `refractory_frames`
    after it.

    Args:
        probs: `(frames, classes)` probabilities.
        threshold: posterior threshold.
        smoothing_frames: causal moving-average length.
        refractory_frames: frames after a detection during which none fires.
        ignore_classes: classes never reported (e.g. a `_silence_` class).

    Returns:
        A list of `(frame, class)`.
    """
    best, peak = smoothed_posteriors(probs, smoothing_frames, ignore_classes)
    return fire(best, peak, threshold, refractory_frames)


def fire(best, peak, threshold, refractory_frames=50):
    """Detections `(frame, class)` from `smoothed_posteriors` at one threshold."""
    above = np.flatnonzero(peak > threshold)
    detections, position = [], 0
    # One step per detection, not per frame above the threshold: a sweep of
    # thresholds over an hour-long stream stays fast.
    while position < len(above):
        frame = int(above[position])
        detections.append((frame, int(best[frame])))
        position = int(np.searchsorted(above, frame + refractory_frames, side="right"))
    return detections


def moving_average(probs, smoothing_frames=5):
    """The causal moving average of `detect`, `(frames, classes)`: each frame's mean over
    it and the `smoothing_frames - 1` before it (fewer at the start)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(
            f"detect expects (frames, classes) probabilities, got shape {probs.shape}."
        )
    if int(smoothing_frames) < 1:
        raise ValueError(f"smoothing_frames must be >= 1, got {smoothing_frames}.")
    total = np.cumsum(np.vstack([np.zeros((1, probs.shape[1])), probs]), axis=0)
    start = np.maximum(np.arange(len(probs)) + 1 - smoothing_frames, 0)
    return (total[1:] - total[start]) / (np.arange(len(probs)) + 1 - start)[:, None]


def smoothed_posteriors(probs, smoothing_frames=5, ignore_classes=()):
    """The causal moving average of `detect`: `(best class, its smoothed posterior)` per frame."""
    smoothed = moving_average(probs, smoothing_frames)
    if len(ignore_classes):
        smoothed[:, list(ignore_classes)] = 0.0
    best = smoothed.argmax(-1)
    return best, smoothed[np.arange(len(probs)), best]


def score_detections(
    probs,
    segments,
    frame_rate,
    threshold=0.5,
    smoothing_frames=5,
    refractory_frames=50,
    tolerance_frames=25,
    ignore_classes=(),
):
    """Scores a stream: a segment is hit by a detection of its class within it (or up to
    `tolerance_frames` after its end, as a causal detector lags); every other detection is a
    false alarm. MLPerf Tiny's streaming wake-word benchmark counts the same false positives and
    false negatives on a ~20-minute stream.

    Args:
        probs: `(frames, classes)` probabilities of the whole stream.
        segments: `(n, 3)` rows `(start, end, class)`, end exclusive.
        frame_rate: frames per second (e.g. 50 for a 20 ms step).
        threshold, smoothing_frames, refractory_frames, ignore_classes: see `detect`.
        tolerance_frames: lag allowed after a segment's end.

    Returns:
        `DetectionScores`.
    """
    detections = detect(
        probs, threshold, smoothing_frames, refractory_frames, ignore_classes
    )
    hours = len(probs) / frame_rate / 3600.0
    return match_detections(detections, segments, hours, tolerance_frames)


def match_detections(detections, segments, hours, tolerance_frames=25):
    """`DetectionScores` of `detections` `(frame, class)` against `segments` (see
    `score_detections`). Each detection, in order, hits the first segment (by row)
    of its class that is not hit yet and spans its frame (up to `tolerance_frames`
    after the end); otherwise it is a false alarm."""
    segments = np.asarray(segments).reshape(-1, 3)
    hit = np.zeros(len(segments), dtype=bool)
    wrong = []
    if len(segments) and len(detections):
        # Only segments starting in (frame - reach, frame] can span a frame: look at
        # those through the sorted starts, not at every segment per detection (a
        # threshold sweep over hours of audio meets thousands of each).
        order = np.argsort(segments[:, 0], kind="stable")
        starts = segments[order, 0]
        reach = int((segments[:, 1] + tolerance_frames - segments[:, 0]).max())
        frames = np.asarray([frame for frame, _ in detections])
        first = np.searchsorted(starts, frames - reach, side="right").tolist()
        last = np.searchsorted(starts, frames, side="right").tolist()
        order, ends = order.tolist(), (segments[:, 1] + tolerance_frames).tolist()
        labels, taken = segments[:, 2].tolist(), hit.tolist()
        for (frame, label), lo, hi in zip(detections, first, last):
            match = min(
                (
                    j
                    for j in order[lo:hi]
                    if not taken[j] and labels[j] == label and frame < ends[j]
                ),
                default=None,
            )
            if match is None:
                wrong.append((frame, label))
            else:
                taken[match] = True
        hit = np.asarray(taken, dtype=bool)
    else:
        wrong = list(detections)
    return DetectionScores(
        int(hit.sum()), int((~hit).sum()), len(wrong), hours, detections, wrong
    )
