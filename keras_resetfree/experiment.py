"""The reset-free protocol: train each family four ways, evaluate on never-reset streams.

Methods (how a model is trained, and how it is evaluated):

- `reset_free`: `ResetFreeLoss` on never-reset training windows, labels from the
  temporal-intensity mask of the input; evaluated with no reset ever.
- `ce_only`: `FrameCrossEntropy` on the same windows (no KL term); no reset.
- `classic`: one sample at a time from a zero state, `LastFrameCrossEntropy`;
  evaluated with an oracle reset at every true segment start, with a periodic
  reset every `period` frames, and with no reset.
- `reset_free_energy`: `ResetFreeLoss` with the energy mask instead (the mask ablation).

Tasks: `kws` (Speech Commands, 10 words, speaker split, background noise
between words), `fsdd` (spoken digits, held-out speaker), `smnist` (Sequential
Fashion-MNIST, MNIST digits between images).

Evaluation streams are never reset (except the classic model's reset modes)
and are scored on prefixes of one long run: the first N segments of a
never-reset run are exactly a never-reset stream of N segments.
"""

import json
import time
from dataclasses import dataclass

import keras
import numpy as np

from keras_resetfree import datasets, layers, losses, metrics, streams
from keras_resetfree.streaming import Streamer

TASKS = ("kws", "fsdd", "smnist")
FAMILIES = ("vanilla_rnn", "gru", "lstm", "ssm", "spiking")
METHODS = ("reset_free", "ce_only", "classic", "reset_free_energy")
MODES = {"reset_free": ("none",), "ce_only": ("none",), "reset_free_energy": ("none",)}
MODES["classic"] = ("oracle", "periodic", "none")

# Sizes: (training segments, evaluation segments, epochs, units). The full
# evaluation streams hold over 10^5 frames on every task.
SIZES = {
    "quick": (1000, 300, 8, 32),
    "full": (2000, 2000, 15, 64),
    "smoke": (40, 12, 1, 8),
}
LENGTHS = (1, 10, 100, 1000, 2000)


@dataclass
class TaskData:
    """Everything one task needs: training streams for each mask, classic clips, the test stream."""

    name: str
    train: dict  # mask name -> Stream
    clips: tuple  # (x, y): one sample per row for the classic training
    test: object  # Stream with ground-truth labels on the segment spans
    decision_mask: (
        object  # (frames,) mask computed from the test input: decisions at its last 1
    )
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
    """Builds the streams of a task from `../shared/data` (or the data folder found by `data_dir`)."""
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
            test.mask,
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
    elif task == "fsdd":
        train_words = datasets.load_fsdd(split="train", by="speaker", sample_rate=16000)
        test_words = datasets.load_fsdd(split="test", by="speaker", sample_rate=16000)
    else:
        raise ValueError(f"Unknown task {task!r}; choose from {TASKS}.")
    common = {"noise": noise, "snr_db": (5.0, 20.0)}
    train = {
        mask: streams.KeywordStream(
            train_words, num_segments=n_train, seed=seed, mask=mask, **common
        ).build()
        for mask in ("temporal_intensity", "energy", "truth")
    }
    test = streams.KeywordStream(
        test_words, num_segments=n_test, seed=seed + 1, mask="truth", **common
    ).build()
    # The same audio (same seed) with the temporal-intensity mask: computed from
    # the input, so a deployed model has it too; decisions are read at its last
    # informative frame in each utterance.
    decision_mask = (
        streams.KeywordStream(test_words, num_segments=n_test, seed=seed + 1, **common)
        .build()
        .mask
    )
    return TaskData(
        task,
        train,
        _clips(train["truth"], 50),
        test,
        decision_mask,
        len(train_words.label_names),
        train["truth"].frame_rate,
    )


def build_model(family, num_features, num_classes, units, adapt_on=None):
    """Normalization, one recurrent layer of `family`, per-frame logits."""
    inputs = keras.Input((None, num_features))
    x = inputs
    if adapt_on is not None:
        normalization = keras.layers.Normalization(axis=-1)
        normalization.adapt(adapt_on)
        x = normalization(x)
    if family == "spiking":
        x = layers.SpikingRNN(units * 2, threshold=0.02)(x)
        logits = layers.LeakyReadout(num_classes)(x)
    else:
        recurrent = {
            "vanilla_rnn": lambda: layers.VanillaRNN(units),
            "gru": lambda: layers.GRU(units),
            "lstm": lambda: layers.LSTM(units),
            "ssm": lambda: layers.SSM(units, state_size=units // 2),
        }[family]()
        logits = keras.layers.Dense(num_classes)(recurrent(x))
    return keras.Model(inputs, logits, name=f"{family}")


def train_model(data, family, method, size="quick", seed=0, window=200, verbose=0):
    """Trains one family one way on a task; returns `(model, seconds)`."""
    _, _, epochs, units = SIZES[size]
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    stream = data.train[
        "energy" if method == "reset_free_energy" else "temporal_intensity"
    ]
    model = build_model(
        family,
        stream.features.shape[1],
        data.num_classes,
        units,
        adapt_on=stream.features,
    )
    if method == "classic":
        x, y = data.clips
        loss = losses.LastFrameCrossEntropy(from_logits=True)
    else:
        x, y = stream.windows(window)
        loss = (
            losses.FrameCrossEntropy if method == "ce_only" else losses.ResetFreeLoss
        )(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=loss)
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=verbose)
    return model, time.perf_counter() - start


def stream_logits(model, features, reset_frames=(), chunk=250):
    """Per-frame logits of `features` run without reset, or reset at `reset_frames`.

    Without resets: a `Streamer` in chunks of `chunk` frames, never reset.
    With resets: every piece between two resets starts from the initial
    state, so the pieces run side by side as one batch, each padded at its
    end (a causal model's outputs do not depend on what follows).
    """
    bounds = sorted(
        {0, len(features), *(int(f) for f in reset_frames if 0 < f < len(features))}
    )
    if len(bounds) == 2:
        return Streamer(model, batch_size=1).run(features[None], chunk_size=chunk)[0]
    lengths = np.diff(bounds)
    batch = np.zeros((len(lengths), lengths.max(), features.shape[1]), features.dtype)
    for row, (a, n) in enumerate(zip(bounds[:-1], lengths)):
        batch[row, :n] = features[a : a + n]
    logits = keras.ops.convert_to_numpy(model.predict(batch, batch_size=256, verbose=0))
    return np.concatenate([logits[row, :n] for row, n in enumerate(lengths)])


def score_prefixes(logits, stream, lengths=LENGTHS, decision_mask=None):
    """acc_f, acc_p, noise confidence and false alarms per hour over the first N segments.

    acc_p reads each segment's prediction at its last frame with
    `decision_mask` = 1 (its last frame when the mask marks none of it).
    """
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    results = {}
    for n in lengths:
        if n > len(stream.segments):
            n = len(stream.segments)  # the whole stream
        if str(n) in results:
            continue
        end = int(stream.segments[n - 1, 1]) + 1
        segments = stream.segments[:n]
        row = {
            "frames": end,
            "acc_f": metrics.frame_accuracy(stream.labels[:end], probs[:end]),
            "acc_p": metrics.stream_decision_accuracy(
                probs[:end],
                segments,
                None if decision_mask is None else decision_mask[:end],
            ),
            "noise_confidence": metrics.noise_confidence(
                stream.labels[:end], probs[:end]
            ),
        }
        if stream.frame_rate:
            detection = metrics.score_detections(
                probs[:end], segments, stream.frame_rate
            )
            row["false_alarms_per_hour"] = detection.false_alarms_per_hour
            row["hit_rate"] = detection.hit_rate
        results[str(n)] = row
    return results


def evaluate_model(model, data, method, period=None, lengths=LENGTHS):
    """Scores a model on the test stream in each reset mode of its method."""
    test = data.test
    period = period or int(np.median(np.diff(test.segments[:, 0])))
    out = {}
    for mode in MODES[method]:
        resets = {
            "none": (),
            "oracle": test.segments[:, 0],
            "periodic": np.arange(period, len(test), period),
        }[mode]
        start = time.perf_counter()
        logits = stream_logits(model, test.features, resets)
        out[mode] = {
            "seconds": time.perf_counter() - start,
            "by_length": score_prefixes(logits, test, lengths),
        }
        if mode == "periodic":
            out[mode]["period"] = period
    return out


def run(
    task, families=FAMILIES, methods=METHODS, size="quick", seed=0, out=None, log=print
):
    """The whole protocol for one task; returns (and writes, if `out`) a JSON-able dict."""
    start = time.perf_counter()
    data = load_task(task, size, seed)
    log(f"[{task}] data in {time.perf_counter() - start:.0f} s: test stream {len(data.test)} frames, "
        f"{len(data.test.segments)} segments")  # fmt: skip
    results = {
        "task": task,
        "size": size,
        "seed": seed,
        "backend": keras.backend.backend(),
        "test_frames": len(data.test),
        "test_segments": len(data.test.segments),
        "runs": {},
    }
    for family in families:
        for method in methods:
            model, train_seconds = train_model(data, family, method, size, seed)
            scores = evaluate_model(model, data, method)
            results["runs"][f"{family}/{method}"] = {
                "train_seconds": train_seconds,
                "eval": scores,
            }
            longest = max(scores[next(iter(scores))]["by_length"], key=int)
            summary = ", ".join(
                f"{mode} acc_p {100 * s['by_length'][longest]['acc_p']:.1f} %"
                for mode, s in scores.items()
            )
            log(
                f"[{task}] {family:>11} {method:<17} trained {train_seconds:5.0f} s; {longest} segments: {summary}"
            )
    results["seconds"] = time.perf_counter() - start
    if out:
        with open(out, "w") as f:
            json.dump(results, f, indent=1)
    return results
