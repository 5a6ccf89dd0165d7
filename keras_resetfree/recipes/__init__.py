"""The one place for the recipe: model factory, tasks, training to convergence, scoring.

The command line, `keras_resetfree.experiment`, `keras_resetfree.tuning`,
the examples and the benchmarks all build, train and score through here.
"""

from keras_resetfree.recipes.families import FAMILIES, SIZES, build_model, units_for
from keras_resetfree.recipes.scoring import (
    REPORT_RATES,
    Detector,
    calibrate,
    false_alarm_sources,
    frr_at,
    ignored_classes,
    keyword_peaks,
    plot_tradeoff,
    probabilities,
    score,
    score_model,
    segment_predictions,
    stream_logits,
    tradeoff,
)
from keras_resetfree.recipes.spotter import (
    MASKS,
    RecipeConfig,
    Spotter,
    build_for_task,
    calibrate_spotter,
    calibration_ranges,
    load_config,
    split_normalization,
    train_spotter,
)
from keras_resetfree.recipes.tasks import (
    KeywordTask,
    TaskData,
    load_keyword_task,
    load_task,
    split_noise,
)
from keras_resetfree.recipes.training import StreamValidation, fit

__all__ = [
    "FAMILIES",
    "MASKS",
    "REPORT_RATES",
    "SIZES",
    "Detector",
    "KeywordTask",
    "RecipeConfig",
    "Spotter",
    "StreamValidation",
    "TaskData",
    "build_for_task",
    "build_model",
    "calibrate",
    "calibrate_spotter",
    "calibration_ranges",
    "false_alarm_sources",
    "fit",
    "frr_at",
    "ignored_classes",
    "keyword_peaks",
    "load_config",
    "load_keyword_task",
    "load_task",
    "plot_tradeoff",
    "probabilities",
    "score",
    "score_model",
    "segment_predictions",
    "split_noise",
    "split_normalization",
    "stream_logits",
    "tradeoff",
    "train_spotter",
    "units_for",
]
