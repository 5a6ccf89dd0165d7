"""KerasTuner search of the CE/KL balance, scored on a long never-reset validation stream.

When `kl_weight` itself is searched, `val_loss` is not comparable between
trials (each trial has its own loss), so trials are scored on a fixed
metric instead: accuracy at segment ends (acc_p) and false alarms per hour
on a validation stream run through the `Streamer` without any reset.
"""

import hashlib
import math

import keras
import numpy as np

from keras_resetfree import recipes
from keras_resetfree.losses import ResetFreeLoss


def _keras_tuner():
    try:
        import keras_tuner
    except ImportError as error:  # pragma: no cover - a core dependency
        raise ImportError(
            "keras_resetfree.tuning needs keras-tuner (and six)."
        ) from error
    return keras_tuner


def stream_score(acc_p, false_alarms_per_hour, false_alarm_cost=0.001):
    """The default objective: `acc_p - false_alarm_cost * false alarms per hour`.

    With the default cost, 10 false alarms per hour weigh as much as one
    point of acc_p.
    """
    return acc_p - false_alarm_cost * false_alarms_per_hour


DIRECTIONS = {
    "stream_score": "max",
    "stream_acc_p": "max",
    "segment_accuracy": "max",
    "false_alarms_per_hour": "min",
    "noise_confidence": "min",
}


def objective(name="stream_score", direction=None):
    """A `keras_tuner.Objective` for one of the values a trial reports:
    `stream_score` (max), `stream_acc_p` (max), `segment_accuracy` (max),
    `false_alarms_per_hour` (min), `noise_confidence` (min). `direction`
    defaults to the value's own."""
    if name not in DIRECTIONS:
        raise ValueError(
            f"Unknown objective {name!r}; choose from {sorted(DIRECTIONS)}."
        )
    return _keras_tuner().Objective(name, direction=direction or DIRECTIONS[name])


def score_on_stream(model, stream, chunk=250, threshold=0.5, false_alarm_cost=0.001):
    """Runs `stream` through a Streamer, never reset; returns the trial's values
    (`keras_resetfree.recipes.score`'s rules)."""
    probs = recipes.probabilities(
        recipes.stream_logits(model, stream.features, chunk=chunk)
    )
    scores = recipes.score(probs, stream, recipes.Detector(threshold), curve=False)
    if stream.frame_rate:
        false_alarms = scores["false_alarms_per_hour"]
    else:  # frames are not time: count confident noise frames per 1,000 frames instead
        noise = stream.labels == stream.noise_label
        false_alarms = (
            1000.0 * float(np.mean(probs[noise].max(-1) > threshold))
            if noise.any()
            else 0.0
        )
    return {
        "stream_acc_p": scores["acc_p"],
        "segment_accuracy": scores["segment_accuracy"],
        "false_alarms_per_hour": false_alarms,
        "noise_confidence": scores["noise_confidence"],
        "stream_score": stream_score(scores["acc_p"], false_alarms, false_alarm_cost),
    }


class ResetFreeHyperModel(_keras_tuner().HyperModel):
    """Searches `kl_weight` (log scale) and the mask threshold; optionally family and width.

    `build(hp)` makes a per-frame classifier compiled with
    `ResetFreeLoss(kl_weight)`. `fit(hp, model)` relabels the training
    stream at the trial's mask threshold (`Stream.with_mask_threshold`),
    trains on its never-reset windows, then scores the model on the
    validation stream with the Streamer, never reset, and returns
    `stream_score`, `stream_acc_p`, `false_alarms_per_hour` and
    `noise_confidence`: use one of them as the tuner's objective
    (`keras_resetfree.tuning.objective()`), never `val_loss`.

    Works unchanged with `RandomSearch`, `BayesianOptimization` and
    `Hyperband` (which passes `epochs`), on every backend.

    Args:
        train_stream: a `Stream` built with the temporal-intensity mask (it
            keeps the intensity that thresholds are applied to).
        validation_stream: a long never-reset `Stream` (labelled by the mask of
            its input, which also says where each decision is read).
        num_classes: number of classes.
        families: family names for `keras_resetfree.recipes.build_model`;
            more than one makes the family a hyperparameter.
        units: widths; more than one makes the width a hyperparameter.
        kl_weight: (min, max) of the log-scale search.
        mask_threshold: (min, max) of the threshold search, or None to keep
            the stream's labels.
        window: training window, frames.
        epochs: epochs per trial (Hyperband overrides it).
        batch_size: windows per batch.
        false_alarm_cost: weight of false alarms per hour in `stream_score`.
        seed: seed of every trial's initialisation (combined with the trial's values).

    Example:

    >>> hypermodel = ResetFreeHyperModel(train, validation, num_classes=10)
    >>> tuner = keras_tuner.RandomSearch(hypermodel, objective=tuning.objective(),
    ...                                  max_trials=10, directory="tuning", project_name="kws")
    >>> tuner.search()
    """

    def __init__(
        self,
        train_stream,
        validation_stream,
        num_classes,
        families=("gru",),
        units=(64,),
        kl_weight=(0.01, 10.0),
        mask_threshold=(0.5, 0.99),
        window=200,
        epochs=5,
        batch_size=32,
        false_alarm_cost=0.001,
        seed=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if mask_threshold is not None and train_stream.intensity is None:
            raise ValueError(
                "Searching the mask threshold needs a training stream built with the "
                "temporal-intensity mask (it keeps the intensity); pass mask_threshold=None otherwise."
            )
        self.train_stream = train_stream
        self.validation_stream = validation_stream
        self.num_classes = int(num_classes)
        self.families = tuple(families)
        self.units = tuple(units)
        self.kl_weight = tuple(kl_weight)
        self.mask_threshold = None if mask_threshold is None else tuple(mask_threshold)
        self.window = int(window)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.false_alarm_cost = float(false_alarm_cost)
        self.seed = int(seed)

    def _seed(self, hp):
        values = sorted(
            (k, round(v, 6) if isinstance(v, float) else v)
            for k, v in hp.values.items()
        )
        digest = hashlib.sha1(
            repr(values).encode()
        ).hexdigest()  # stable across processes
        return (self.seed + int(digest[:8], 16)) % (2**31)

    def build(self, hp):
        keras.utils.set_random_seed(self._seed(hp))
        kl_weight = hp.Float(
            "kl_weight", self.kl_weight[0], self.kl_weight[1], sampling="log"
        )
        if self.mask_threshold is not None:
            hp.Float("mask_threshold", self.mask_threshold[0], self.mask_threshold[1])
        family = (
            hp.Choice("family", list(self.families))
            if len(self.families) > 1
            else self.families[0]
        )
        units = (
            hp.Choice("units", list(self.units))
            if len(self.units) > 1
            else self.units[0]
        )
        model = recipes.build_model(
            family,
            self.train_stream.features.shape[1],
            self.num_classes,
            size=units,
            normalization=self.train_stream.features,
        )
        model.compile(
            optimizer=keras.optimizers.Adam(3e-3),
            loss=ResetFreeLoss(kl_weight, from_logits=True),
        )
        return model

    def fit(self, hp, model, *args, epochs=None, callbacks=None, verbose=0, **kwargs):
        stream = self.train_stream
        if self.mask_threshold is not None:
            stream = stream.with_mask_threshold(hp.get("mask_threshold"))
        x, y = stream.windows(self.window)
        model.fit(
            x,
            y,
            batch_size=self.batch_size,
            epochs=epochs or self.epochs,
            initial_epoch=kwargs.get("initial_epoch", 0),
            callbacks=[
                c
                for c in (callbacks or [])
                if not isinstance(c, keras.callbacks.EarlyStopping)
            ],
            verbose=verbose,
        )
        values = score_on_stream(
            model,
            self.validation_stream,
            false_alarm_cost=self.false_alarm_cost,
        )
        if not all(math.isfinite(v) for v in values.values()):
            values["stream_score"] = -1e9  # a diverged trial is the worst, not a crash
        return values


def trials_table(tuner):
    """A markdown table of every completed trial: hyperparameters and stream scores, best first."""
    trials = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
    direction = tuner.oracle.objective.direction
    trials.sort(
        key=lambda t: t.score if t.score is not None else -np.inf,
        reverse=direction == "max",
    )
    names = sorted({k for t in trials for k in t.hyperparameters.values})
    metric_names = [
        "stream_score",
        "stream_acc_p",
        "false_alarms_per_hour",
        "noise_confidence",
    ]
    lines = [
        "| trial | " + " | ".join(names + metric_names) + " |",
        "|" + "---|" * (1 + len(names) + 4),
    ]
    for t in trials:
        values = [t.hyperparameters.values.get(n, "") for n in names]
        values = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in values]
        got = [
            t.metrics.get_best_value(m) if t.metrics.exists(m) else float("nan")
            for m in metric_names
        ]
        lines.append(
            f"| {t.trial_id} | " + " | ".join(values + [f"{v:.4g}" for v in got]) + " |"
        )
    return "\n".join(lines)


def plot_objective(tuner, path, name=None):
    """Saves a PNG of the objective against `kl_weight` (log scale), one point per trial."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = name or tuner.oracle.objective.name
    points = [
        (t.hyperparameters.values["kl_weight"], t.metrics.get_best_value(name))
        for t in tuner.oracle.trials.values()
        if t.status == "COMPLETED" and t.metrics.exists(name)
    ]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    if points:
        x, y = zip(*points)
        ax.scatter(x, y)
    ax.set_xscale("log")
    ax.set_xlabel("kl_weight")
    ax.set_ylabel(name)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def keyword_task_streams(task="kws", train_segments=1000, eval_segments=400, seed=0):
    """Training, validation and test streams of a keyword task, speakers disjoint.

    Returns `(train, validation, test, num_classes)`: never-reset streams
    labelled by the temporal-intensity mask of their input (`train` keeps
    its intensity, for the threshold search), built by
    `keras_resetfree.recipes.KeywordTask` (noise split in time, 5-20 dB SNR,
    no augmentation). `kws` is Speech Commands' ten words; `fsdd` trains on
    three of its five speakers, validates on one and tests on one.
    """
    from keras_resetfree import datasets
    from keras_resetfree.streams import Augmentation

    if task not in ("kws", "fsdd"):
        raise ValueError(
            f"keyword_task_streams supports 'kws' and 'fsdd', not {task!r}."
        )
    common = dict(
        snr_db=(5.0, 20.0),
        augmentation=Augmentation.none(),
        segments_per_epoch=train_segments,
        evaluation_segments=eval_segments,
        seed=seed,
    )
    if task == "kws":
        keyword_task = recipes.load_keyword_task(unknown=False, silence=False, **common)
    else:
        every = datasets.load_fsdd(sample_rate=16000)

        def split(speakers):
            return every.subset(
                [i for i, s in enumerate(every.speakers) if s in speakers]
            )

        splits = {
            "train": split({"george", "jackson", "lucas"}),
            "validation": split({"nicolas"}),
            "test": split({"theo"}),
        }
        noise = recipes.split_noise(datasets.load_background_noise())
        keyword_task = recipes.KeywordTask(
            splits, noise, list(every.label_names), **common
        )
    return (
        keyword_task.train_stream(0),
        keyword_task.evaluation_stream("validation"),
        keyword_task.evaluation_stream("test"),
        keyword_task.num_classes,
    )
