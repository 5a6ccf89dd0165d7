"""Task definitions: data -> never-reset streams, with splits and augmentation.

`KeywordTask` is the keyword-spotting task of the recipe: words, `_unknown_`
and `_silence_` (the 12 labels of kws_streaming and MLPerf Tiny with the
default words), speakers split three ways, background noise split in time
(so no test stream replays a noise the training saw), training streams
redrawn with fresh augmentation every epoch. `load_task` gives the paper's
protocol tasks (`kws`, `fsdd`, `smnist`) for `keras_resetfree.experiment`.
"""

from dataclasses import dataclass, field

import numpy as np

from keras_resetfree import datasets, streams
from keras_resetfree.datasets.speech_commands import SILENCE, UNKNOWN
from keras_resetfree.streams.augmentation import Augmentation

# Share of each background-noise recording given to training and validation
# (the rest is the test's): a time split, so every noise type is in every split.
NOISE_SPLIT = (0.7, 0.85)


def split_noise(noise):
    """`{"train", "validation", "test"}` -> the pieces of every recording (see `NOISE_SPLIT`)."""
    if not noise:
        return {"train": None, "validation": None, "test": None}
    a, b = NOISE_SPLIT
    return {
        "train": [n[: int(a * len(n))] for n in noise],
        "validation": [n[int(a * len(n)) : int(b * len(n))] for n in noise],
        "test": [n[int(b * len(n)) :] for n in noise],
    }


@dataclass
class KeywordTask:
    """A keyword-spotting task: three speaker-disjoint splits and the streams built from them.

    Attributes:
        splits: `"train"`, `"validation"`, `"test"` -> `AudioDataset`.
        noise: the same keys -> background recordings (None: silence).
        label_names: the model's outputs, in order.
        noise_classes: classes trained towards uniform (`_silence_`).
        snr_db: `(min, max)` SNR of every stream.
        train_snr_db: `(min, max)` SNR of training streams, if not `snr_db`.
        augmentation: drawn in training streams only.
        segments_per_epoch: utterances in each epoch's training stream.
        evaluation_segments: utterances in the validation and test streams.
        features: the feature layer (default `keras_resetfree.features.MFCC`).
        mask: the mask that labels training streams (`"temporal_intensity"`,
            `"energy"` or `"truth"`); evaluation streams always use the
            temporal-intensity mask of their input, as a device would.
        seed: the seed every stream is derived from.
        verbose: 1 shows a progress bar while a validation, test or
            hours-long stream is built (training streams build silently,
            between `fit`'s own epochs), 2 one line each, 0 nothing.
        noise_rms: the RMS level of the noise; an utterance is scaled to its
            SNR above it, up to `streams.keyword_stream.SPEECH_CEILING_DB`
            (20 dB); higher SNRs lower the noise instead.
        unknown_share: the share of `_unknown_` utterances in the training
            streams (None: as many as the training split holds).
    """

    splits: dict
    noise: dict
    label_names: list
    noise_classes: tuple = ()
    snr_db: tuple = (0.0, 20.0)
    augmentation: Augmentation = field(default_factory=Augmentation)
    segments_per_epoch: int = 4000
    evaluation_segments: int = 1000
    features: object = None
    mask: str = "temporal_intensity"
    seed: int = 0
    train_snr_db: tuple = None
    verbose: int = 0
    noise_rms: float = 0.01
    unknown_share: float = None

    @property
    def num_classes(self):
        return len(self.label_names)

    @property
    def sample_rate(self):
        return self.splits["train"].sample_rate

    def _stream(
        self,
        split,
        num_segments,
        seed,
        augmentation=None,
        classes=None,
        snr_db=None,
        **kwargs,
    ):
        return streams.KeywordStream(
            self.splits[split],
            noise=self.noise[split],
            num_segments=num_segments,
            snr_db=self.snr_db if snr_db is None else snr_db,
            noise_rms=self.noise_rms,
            features=self.features,
            classes=classes,
            noise_classes=self.noise_classes,
            augmentation=augmentation,
            seed=seed,
            **kwargs,
        ).build(verbose=0 if split == "train" else self.verbose)

    def train_stream(self, epoch=0, num_segments=None):
        """The training stream of `epoch`: a fresh draw of utterances, gaps, SNRs (in
        `train_snr_db`, if set), `_unknown_` share (`unknown_share`, if set) and
        augmentation."""
        shares = None
        if self.unknown_share is not None:
            if UNKNOWN not in self.label_names:
                raise ValueError(
                    "unknown_share is set, but this task has no _unknown_ class."
                )
            shares = {self.label_names.index(UNKNOWN): float(self.unknown_share)}
        return self._stream(
            "train",
            num_segments or self.segments_per_epoch,
            self.seed + 1000 * (epoch + 1),
            self.augmentation,
            snr_db=self.train_snr_db,
            mask=self.mask,
            class_shares=shares,
        )

    def evaluation_stream(self, split="test", num_segments=None, seed_offset=0):
        """A never-reset stream of `split`'s speakers and noise, no augmentation, mask from
        the input: `validation` or `test`, or `train` to measure how well a model fits the
        speakers it trained on (built like the others, not like a training epoch)."""
        offsets = {"validation": 1, "test": 2, "train": 3}
        if split not in offsets:
            raise ValueError(
                f"split must be 'validation', 'test' or 'train', got {split!r}."
            )
        offset = offsets[split] + seed_offset
        return self._stream(
            split, num_segments or self.evaluation_segments, self.seed + offset
        )

    def false_alarm_stream(self, split="test", hours=1.0):
        """At least `hours` of `split`'s noise with only non-keyword utterances in it
        (`_unknown_` and `_silence_`), for false alarms per hour."""
        from keras_resetfree.recipes.scoring import ignored_classes

        others = [c for c in ignored_classes(self.label_names)]
        if not others:
            raise ValueError(
                "This task has no _unknown_ or _silence_ class to fill a false-alarm stream."
            )
        return self._stream_of_hours(split, hours, self.seed + 7, others)

    def calibration_stream(self, hours=2.0, snr_db=None):
        """At least `hours` of never-reset validation audio (all classes), to calibrate the
        detector on: a rate of a few false alarms per hour is only measurable over hours.
        `snr_db`: its `(min, max)` SNR, if not the task's."""
        return self._stream_of_hours("validation", hours, self.seed + 5, snr_db=snr_db)

    def _stream_of_hours(self, split, hours, seed, classes=None, snr_db=None):
        dataset = self.splits[split]
        chosen = dataset.labels if classes is None else classes
        pool = [
            w for w, label in zip(dataset.waveforms, dataset.labels) if label in chosen
        ]
        if not pool:
            raise ValueError(
                f"The {split} split has no utterance of classes {classes}."
            )
        # Gaps are 0.3-1.5 s (0.9 s on average), then one clip.
        seconds = np.mean([len(w) for w in pool]) / dataset.sample_rate + 0.9
        count = int(np.ceil(hours * 3600.0 / seconds * 1.1))
        while True:
            stream = self._stream(split, count, seed, classes=classes, snr_db=snr_db)
            if len(stream) / stream.frame_rate >= hours * 3600.0:
                return stream
            count = int(count * 1.2) + 1


def load_keyword_task(
    path=None,
    words=datasets.TEN_WORDS,
    unknown=True,
    silence=True,
    snr_db=(0.0, 20.0),
    augmentation=None,
    segments_per_epoch=4000,
    evaluation_segments=1000,
    validation_percent=10.0,
    test_percent=10.0,
    seed=0,
    train_snr_db=None,
    unknown_share=None,
):
    """The recipe's keyword task from a folder in the Speech Commands layout.

    `path/<word>/*.wav` for each of `words`; `path/_unknown_/` and other word
    folders become `_unknown_` (with `unknown`); `path/_silence_/` becomes
    `_silence_` (with `silence`); `path/_background_noise_/` is the noise
    (silence, i.e. -80 dBFS dither, when absent). Default path: the shared
    Speech Commands clips (`keras_resetfree.datasets.data_dir`). Speakers are
    split by the `<speaker>_nohash_` file names (or the official lists).

    `train_snr_db`: the SNR range of the training streams, if not `snr_db`.
    `unknown_share`: the share of `_unknown_` utterances in the training
    streams, if not the training split's own.

    Returns:
        A `KeywordTask`.
    """
    augmentation = Augmentation() if augmentation is None else augmentation
    splits = {
        name: datasets.load_speech_commands(
            path,
            words=words,
            split=name,
            unknown=unknown,
            silence=silence,
            validation_percent=validation_percent,
            test_percent=test_percent,
        )
        for name in ("train", "validation", "test")
    }
    for name, split in splits.items():
        if len(split) == 0:
            raise ValueError(
                f"The {name} split of {path or 'the Speech Commands folder'} is empty: "
                "too few speakers for validation_percent / test_percent."
            )
    try:
        noise = datasets.load_background_noise(path)
    except FileNotFoundError:
        noise = None
    names = list(splits["train"].label_names)
    noise_classes = (names.index(SILENCE),) if SILENCE in names else ()
    return KeywordTask(
        splits,
        split_noise(noise),
        names,
        noise_classes,
        tuple(snr_db),
        augmentation,
        int(segments_per_epoch),
        int(evaluation_segments),
        seed=int(seed),
        train_snr_db=None if train_snr_db is None else tuple(train_snr_db),
        unknown_share=None if unknown_share is None else float(unknown_share),
    )


# The paper's protocol tasks (`keras_resetfree.experiment`).
TASKS = ("kws", "fsdd", "smnist")
# Sizes: (training segments, evaluation segments, epochs, units). The full
# evaluation streams hold over 10^5 frames on every task.
SIZES = {
    "quick": (1000, 300, 8, 32),
    "full": (2000, 2000, 15, 64),
    "smoke": (40, 12, 1, 8),
}


@dataclass
class TaskData:
    """Everything one protocol task needs: training streams for each mask, classic clips, the test stream."""

    name: str
    train: dict  # mask name -> Stream
    clips: tuple  # (x, y): one sample per row for the classic training
    test: object  # Stream, labelled by the temporal-intensity mask of its input
    num_classes: int
    frame_rate: float


def _clips(stream, length):
    """Classic per-sample training data: the `length` frames ending at each segment's end."""
    xs, ys = [], []
    for _, end, label in stream.segments:
        if end >= length:
            xs.append(stream.features[end - length : end])
            ys.append(label)
    return np.stack(xs), np.asarray(ys, "int32")


def load_task(task, size="quick", seed=0):
    """Builds the streams of a protocol task from `../shared/data` (or `data_dir`)."""
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; choose from {TASKS}.")
    if size not in SIZES:
        raise ValueError(f"Unknown size {size!r}; choose from {sorted(SIZES)}.")
    n_train, n_test, _, _ = SIZES[size]
    if task == "smnist":
        (fx, fy), (fxt, fyt) = datasets.load_fashion_mnist()
        (mx, _), (mxt, _) = datasets.load_mnist()
        train = streams.image_stream(fx, fy, mx, n_train, seed=seed)
        test = streams.image_stream(fxt, fyt, mxt, n_test, seed=seed + 1)
        return TaskData(
            task,
            {"temporal_intensity": train, "energy": train},
            _clips(train, 28),
            test,
            10,
            None,
        )
    noise = datasets.load_background_noise()
    if task == "kws":
        words = datasets.TEN_WORDS
        train_words = datasets.load_speech_commands(
            words=words, unknown=False, silence=False, split="train"
        )
        test_words = datasets.load_speech_commands(
            words=words, unknown=False, silence=False, split="test"
        )
    else:
        train_words = datasets.load_fsdd(split="train", by="speaker", sample_rate=16000)
        test_words = datasets.load_fsdd(split="test", by="speaker", sample_rate=16000)
    common = {"noise": noise, "snr_db": (5.0, 20.0)}
    train = {
        mask: streams.KeywordStream(
            train_words, num_segments=n_train, seed=seed, mask=mask, **common
        ).build()
        for mask in ("temporal_intensity", "energy", "truth")
    }
    # Labelled by the temporal-intensity mask of its own input, as a device
    # computes it: decisions are read at its last informative frame.
    test = streams.KeywordStream(
        test_words, num_segments=n_test, seed=seed + 1, **common
    ).build()
    return TaskData(
        task,
        train,
        _clips(train["truth"], 50),
        test,
        len(train_words.label_names),
        train["truth"].frame_rate,
    )
