"""Continual-inference metrics: acc_f, acc_p, noise confidence, detection scoring."""

from keras_resetfree.metrics.detection import (
    DetectionScores,
    detect,
    fire,
    match_detections,
    moving_average,
    score_detections,
    smoothed_posteriors,
)
from keras_resetfree.metrics.frame_metrics import (
    DecisionAccuracy,
    FrameAccuracy,
    NoiseConfidence,
    decision_accuracy,
    decision_frames,
    frame_accuracy,
    noise_confidence,
    segment_decision_frames,
    stream_decision_accuracy,
)

__all__ = [
    "DecisionAccuracy",
    "DetectionScores",
    "FrameAccuracy",
    "NoiseConfidence",
    "decision_accuracy",
    "decision_frames",
    "detect",
    "fire",
    "match_detections",
    "moving_average",
    "frame_accuracy",
    "noise_confidence",
    "score_detections",
    "segment_decision_frames",
    "smoothed_posteriors",
    "stream_decision_accuracy",
]
