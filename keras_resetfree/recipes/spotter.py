"""The keyword-spotting recipe end to end: config -> task -> model -> training -> calibration.

A `Spotter` is what `resetfree train` writes and `evaluate`, `convert` and
`sketch` read: a folder holding `model.keras` (Normalization inside, raw
MFCCs in, per-frame logits out) and `spotter.json` (labels, the calibrated
detector, the config it was trained with, its scores).
"""

import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from keras_resetfree import datasets, features
from keras_resetfree.recipes import families, scoring, tasks, training
from keras_resetfree.streams.augmentation import Augmentation

MODEL_FILE, META_FILE = "model.keras", "spotter.json"


#: The masks that can label a recipe's training streams (`RecipeConfig.mask`).
MASKS = ("temporal_intensity", "energy", "speech", "truth")
# The SNR of the quiet rooms a detector is calibrated on by default (see
# `calibration_ranges`): speech at the 20 dB level, the noise 20 dB lower.
QUIET_ROOM_DB = 40.0

# The mel bins of the recipe's MFCCs (`features.MFCC`'s default), of which
# `RecipeConfig.mfcc_coefficients` are kept.
MFCC_MEL_BINS = 40


@dataclass
class RecipeConfig:
    """Everything `train_spotter` needs; the keys of a `resetfree train` config file.

    Attributes:
        data: a folder in the Speech Commands layout (None: the shared clips).
        words: the keywords (folder names), in label order.
        unknown, silence: add the `_unknown_` and `_silence_` labels.
        family, size, depth, projection, front_end, dropout: the model
            (`recipes.build_model`); `front_end = [filters, kernel_size]` puts
            a causal convolution over time before the recurrent layers,
            `[filters, kernel_size, layers]` a stack of them.
        mfcc_coefficients: MFCC coefficients per frame (of the 40 mel bins of
            `keras_resetfree.features.MFCC`); the sketch computes the same.
        snr_db: `(min, max)` SNR of training and evaluation streams.
        train_snr_db: `(min, max)` SNR of the training streams, if not
            `snr_db` (above 20 dB the noise is lowered, not the speech raised:
            `streams.KeywordStream`).
        unknown_share: the share of `_unknown_` utterances in the training
            streams (None: as many as the training clips hold, about one in
            twelve with the shared data); needs `unknown`.
        mask: what marks the informative frames of the training streams
            (`streams.KeywordStream`): `"temporal_intensity"` (the paper's
            mask, computed from the noisy input as a device computes it),
            `"energy"`, `"speech"` (the frames that hold speech in the clean
            clip, whatever the SNR) or `"truth"` (the whole clip).
            Validation and test streams always use the temporal-intensity
            mask of their input.
        augmentation: fields of `keras_resetfree.streams.Augmentation` to
            change, or `"none"` for no augmentation.
        segments_per_epoch: utterances in each epoch's fresh training stream.
        evaluation_segments: utterances in the validation and test streams.
        max_epochs, patience: the convergence budget (`recipes.fit`).
        learning_rate, kl_weight, window, batch_size: training.
        peak_weight: the weight of `ResetFreeLoss`'s max-pooling term, which
            makes each word's best frame confident (0: none).
        weight_average: the momentum of a moving average of the weights
            (`recipes.fit`), or 0 for none.
        target_false_alarms_per_hour: the detector is calibrated on the
            validation speakers for this rate.
        calibration_hours: hours of never-reset validation audio the detector
            is calibrated on, for each range of `calibration_snr_db`.
        calibration_snr_db: the SNR ranges `[[min, max], ...]` the detector is
            calibrated on: it keeps the target rate of false alarms on each.
            None (the default): the streams' `snr_db` and quiet rooms, from
            its top up to `QUIET_ROOM_DB` (40 dB), where a detector calibrated
            on noisy audio alone fired several times its target rate. The
            first range also sets the silence threshold of segment accuracy.
        seed: the seed of everything.
    """

    data: str = None
    words: list = field(default_factory=lambda: list(datasets.TEN_WORDS))
    unknown: bool = True
    silence: bool = True
    family: str = "gru"
    size: object = "medium"
    depth: int = 1
    projection: int = None
    front_end: list = None
    dropout: float = 0.0
    mfcc_coefficients: int = 13
    snr_db: list = field(default_factory=lambda: [0.0, 20.0])
    train_snr_db: list = None
    unknown_share: float = None
    mask: str = "temporal_intensity"
    augmentation: object = field(default_factory=dict)
    segments_per_epoch: int = 4000
    evaluation_segments: int = 1000
    max_epochs: int = 100
    patience: int = 12
    learning_rate: float = 3e-3
    kl_weight: float = 1.0
    peak_weight: float = 0.0
    window: int = 200
    batch_size: int = 32
    weight_average: float = 0.0
    target_false_alarms_per_hour: float = 5.0
    calibration_hours: float = 2.0
    calibration_snr_db: list = None
    seed: int = 0

    def __post_init__(self):
        if self.family not in families.FAMILIES:
            raise ValueError(
                f"family must be one of {families.FAMILIES}, got {self.family!r}."
            )
        families.units_for(self.family, self.size)
        if self.front_end is not None:
            self.front_end = list(families.checked_front_end(self.front_end))
        if not self.words:
            raise ValueError("words must name at least one keyword.")
        positive = (
            "segments_per_epoch",
            "evaluation_segments",
            "max_epochs",
            "window",
            "batch_size",
            "depth",
            "mfcc_coefficients",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        for name in (
            "learning_rate",
            "kl_weight",
            "peak_weight",
            "target_false_alarms_per_hour",
            "calibration_hours",
        ):
            value = getattr(self, name)
            if (
                not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
        for name in ("dropout", "weight_average"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}.")
        if self.calibration_hours <= 0:
            raise ValueError(
                f"calibration_hours must be > 0, got {self.calibration_hours!r}."
            )
        if self.unknown_share is not None:
            share = self.unknown_share
            if (
                not isinstance(share, int | float)
                or isinstance(share, bool)
                or not 0 <= share < 1
            ):
                raise ValueError(f"unknown_share must be in [0, 1), got {share!r}.")
            if not self.unknown:
                raise ValueError(
                    "unknown_share needs the _unknown_ label; set unknown = true."
                )
        if self.mask not in MASKS:
            raise ValueError(f"mask must be one of {MASKS}, got {self.mask!r}.")
        _check_snr_range("snr_db", self.snr_db)
        if self.train_snr_db is not None:
            _check_snr_range("train_snr_db", self.train_snr_db)
        ranges = self.calibration_snr_db
        if ranges is not None:
            if not isinstance(ranges, list | tuple) or not ranges:
                raise ValueError(
                    "calibration_snr_db must be a list of [min, max] SNR ranges in dB, "
                    f"got {ranges!r}."
                )
            for value in ranges:
                _check_snr_range("calibration_snr_db", value)
        self.make_augmentation()
        if self.mfcc_coefficients > MFCC_MEL_BINS:
            raise ValueError(
                f"mfcc_coefficients must be <= {MFCC_MEL_BINS} (the MFCC's mel bins), got "
                f"{self.mfcc_coefficients}."
            )

    def make_augmentation(self):
        if self.augmentation == "none":
            return Augmentation.none()
        if not isinstance(self.augmentation, dict):
            raise ValueError(
                f"augmentation must be a table of Augmentation fields or 'none', got {self.augmentation!r}."
            )
        known = {f.name for f in dataclasses.fields(Augmentation)}
        unknown = sorted(set(self.augmentation) - known)
        if unknown:
            raise ValueError(
                f"Unknown augmentation keys {unknown}; known: {sorted(known)}."
            )
        return Augmentation(**self.augmentation)

    def make_features(self, sample_rate):
        """The feature layer of this config's streams at `sample_rate`."""
        return features.MFCC(
            sample_rate,
            num_mel_bins=MFCC_MEL_BINS,
            num_coefficients=self.mfcc_coefficients,
        )

    def to_dict(self):
        return dataclasses.asdict(self)

    def keyword_task(self, verbose=0):
        """The `KeywordTask` this config describes (`recipes.load_keyword_task`);
        `verbose` shows progress while its evaluation streams are built."""
        task = tasks.load_keyword_task(
            self.data,
            words=self.words,
            unknown=self.unknown,
            silence=self.silence,
            snr_db=self.snr_db,
            train_snr_db=self.train_snr_db,
            unknown_share=self.unknown_share,
            augmentation=self.make_augmentation(),
            segments_per_epoch=self.segments_per_epoch,
            evaluation_segments=self.evaluation_segments,
            seed=self.seed,
        )
        task.features = self.make_features(task.sample_rate)
        task.mask = self.mask
        task.verbose = verbose
        return task


def calibration_ranges(snr_db, ranges=None):
    """The SNR ranges a detector is calibrated on (`RecipeConfig.calibration_snr_db`):
    `ranges`, or by default the streams' `snr_db` and, when it stops below
    `QUIET_ROOM_DB`, quiet rooms from its top up to `QUIET_ROOM_DB`."""
    if ranges is not None:
        return [tuple(float(v) for v in r) for r in ranges]
    low, high = (float(v) for v in snr_db)
    return [(low, high)] + ([(high, QUIET_ROOM_DB)] if high < QUIET_ROOM_DB else [])


def _check_snr_range(name, value):
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in value
        )
        or not value[0] <= value[1]
    ):
        raise ValueError(f"{name} must be [min, max] in dB, min <= max, got {value!r}.")


def load_config(path, **overrides):
    """A `RecipeConfig` from a TOML (or, with PyYAML installed, YAML) file, then `overrides`
    (those that are not None)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No config file {path}.")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as error:
            raise ImportError(
                "A YAML config needs PyYAML (pip install pyyaml); or use TOML."
            ) from error
        values = yaml.safe_load(text) or {}
    else:
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib
        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{path}: not valid TOML: {error}") from error
    if not isinstance(values, dict):
        raise ValueError(
            f"{path}: expected a table of settings, got {type(values).__name__}."
        )
    known = {f.name for f in dataclasses.fields(RecipeConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path}: unknown settings {unknown}; known: {sorted(known)}.")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return RecipeConfig(**values)


@dataclass
class Spotter:
    """A trained keyword spotter: the model, its labels and calibrated detector, and its scores."""

    model: object
    label_names: list
    detector: scoring.Detector
    config: RecipeConfig
    scores: dict = field(default_factory=dict)

    @property
    def ignore_classes(self):
        return scoring.ignored_classes(self.label_names)

    def save(self, folder):
        """Writes `folder/model.keras` and `folder/spotter.json`, atomically: into a new
        folder beside it, renamed over the old one only once complete."""
        folder = Path(folder)
        parent = folder.resolve().parent
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=parent))
        try:
            self.model.save(staging / MODEL_FILE)
            meta = {
                "label_names": list(self.label_names),
                "detector": dataclasses.asdict(self.detector),
                "config": self.config.to_dict(),
                "scores": self.scores,
            }
            (staging / META_FILE).write_text(json.dumps(meta, indent=1))
            if folder.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=parent))
                os.replace(folder, old / "x")
                os.replace(staging, folder)
                shutil.rmtree(old)
            else:
                os.replace(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return folder

    @classmethod
    def load(cls, folder):
        folder = Path(folder)
        for name in (MODEL_FILE, META_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(
                    f"{folder} is not a spotter folder written by `resetfree train` (no {name})."
                )
        try:
            meta = json.loads((folder / META_FILE).read_text())
            detector = scoring.Detector(**meta["detector"])
            config = RecipeConfig(**meta["config"])
            labels = meta["label_names"]
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{folder / META_FILE} is corrupt: {error}") from error
        model = load_keras_model(folder / MODEL_FILE)
        return cls(model, labels, detector, config, meta.get("scores", {}))


def load_keras_model(path):
    """`keras.saving.load_model`, with a ValueError naming the file when it is there but cut
    short or damaged (Keras can report such a file as "not found")."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file {path}.")
    try:
        return keras.saving.load_model(path)
    except Exception as error:
        raise ValueError(
            f"{path} is not a complete .keras model (cut short or damaged?): "
            f"{type(error).__name__}: {error}"
        ) from error


def build_for_task(config, task, first_stream=None):
    """The config's model for the task, its Normalization adapted on a training stream."""
    first_stream = first_stream or task.train_stream(0)
    return families.build_model(
        config.family,
        first_stream.features.shape[1],
        task.num_classes,
        size=config.size,
        depth=config.depth,
        projection=config.projection,
        front_end=config.front_end,
        normalization=first_stream.features,
        dropout=config.dropout,
    )


def train_spotter(config, task=None, verbose=1, log=print):
    """Trains, calibrates and scores a keyword spotter; returns a `Spotter`.

    The detector is calibrated on the validation stream for
    `config.target_false_alarms_per_hour`; the scores are on the test stream
    (speakers and noise never seen in training or calibration).
    """
    start = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    task = task or config.keyword_task(verbose=verbose)
    log(
        f"task: {task.num_classes} labels {task.label_names}; speakers split "
        f"{len(task.splits['train'])} / {len(task.splits['validation'])} / "
        f"{len(task.splits['test'])} clips (train / validation / test)"
    )
    first_stream = task.train_stream(0)
    model = build_for_task(config, task, first_stream)
    log(
        f"model: {config.family} size {config.size} depth {config.depth}"
        f"{f' front end {config.front_end}' if config.front_end else ''}: "
        f"{model.count_params():,} parameters"
    )
    history, seconds = training.fit(
        model,
        task,
        max_epochs=config.max_epochs,
        patience=config.patience,
        learning_rate=config.learning_rate,
        kl_weight=config.kl_weight,
        peak_weight=config.peak_weight,
        window=config.window,
        batch_size=config.batch_size,
        verbose=verbose,
        first_stream=first_stream,
        weight_average=config.weight_average,
    )
    epochs = len(history.history.get("loss", []))
    spotter = Spotter(model, list(task.label_names), None, config)
    calibrate_spotter(spotter, task, log=log)
    spotter.scores = {
        "epochs": epochs,
        "train_seconds": seconds,
        **spotter.scores,
        "seconds": time.perf_counter() - start,
    }
    scores = spotter.scores
    log(
        f"trained {epochs} epochs in {seconds:.0f} s; detector {spotter.detector}; test: "
        f"segment accuracy {100 * scores['test_segment_accuracy']:.1f} %, false-reject rate "
        f"{100 * scores['test_false_reject_rate']:.1f} % at "
        f"{scores['test_false_alarms_per_hour']:.1f} false alarms per hour"
    )
    return spotter


def calibrate_spotter(spotter, task, target=None, hours=None, log=lambda _: None):
    """Calibrates `spotter.detector` for `target` false alarms per hour (default the
    config's) on `hours` of never-reset validation audio, then scores the test stream
    into `spotter.scores` (`test_*`). Returns the spotter.

    Hours, not minutes: at a few false alarms per hour a short stream cannot tell 0
    from 5 per hour, and calibration would pick a deaf threshold.
    """
    config = spotter.config
    if target is not None:
        config.target_false_alarms_per_hour = float(target)
    if hours is not None:
        config.calibration_hours = float(hours)
    ranges = calibration_ranges(task.snr_db, config.calibration_snr_db)
    log(
        f"calibrating the detector for {config.target_false_alarms_per_hour:g} false alarms "
        f"per hour on {config.calibration_hours:g} h of validation audio at each of "
        + ", ".join(f"{a:g}-{b:g} dB" for a, b in ranges)
        + " SNR ..."
    )
    calibration = [
        task.calibration_stream(config.calibration_hours, snr_db=r) for r in ranges
    ]
    probs = [
        scoring.probabilities(
            scoring.stream_logits(spotter.model, stream.features, pieces=8)
        )
        for stream in calibration
    ]
    spotter.detector = scoring.calibrate(
        probs, calibration, config.target_false_alarms_per_hour
    )
    log(
        f"scoring the never-reset test stream ({task.evaluation_segments} utterances) ..."
    )
    test = task.evaluation_stream("test")
    test_scores = scoring.score(
        scoring.probabilities(scoring.stream_logits(spotter.model, test.features)),
        test,
        spotter.detector,
    )
    spotter.scores = {
        **{k: v for k, v in spotter.scores.items() if not k.startswith("test_")},
        "calibration_hours": sum(len(c) / c.frame_rate for c in calibration) / 3600.0,
        "test_hours": test_scores.pop("hours", None),
        **{f"test_{k}": v for k, v in test_scores.items()},
    }
    return spotter


def split_normalization(model):
    """`(normalization, classifier)`: a model whose first layer after the input is a
    `Normalization`, split so the board standardises in float and the int8 model
    takes standardised features. `(None, model)` when there is none."""
    layers = [
        layer
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
    ]
    if not layers or not isinstance(layers[0], keras.layers.Normalization):
        return None, model
    message = (
        f"Model {model.name!r} is not a chain of layers after its Normalization; "
        "convert it whole, or split it by hand."
    )
    try:
        inputs = keras.Input(model.inputs[0].shape[1:])
        x = inputs
        for layer in layers[1:]:
            x = layer(x)
        classifier = keras.Model(inputs, x, name=f"{model.name}_classifier")
        # Only a chain of layers splits this way: check on a probe input.
        probe = np.random.default_rng(0).normal(size=(1, 8, model.inputs[0].shape[-1]))
        probe = probe.astype("float32")
        whole = keras.ops.convert_to_numpy(model(probe))
        split = keras.ops.convert_to_numpy(classifier(layers[0](probe)))
    except (ValueError, TypeError) as error:
        raise ValueError(f"{message} ({error})") from error
    if whole.shape != split.shape or not np.allclose(whole, split, atol=1e-5):
        raise ValueError(message)
    return layers[0], classifier
