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

import dataclasses
import json
import time

import keras
import numpy as np

from keras_resetfree import losses, recipes
from keras_resetfree.recipes.tasks import SIZES, TASKS, TaskData, load_task

__all__ = ["FAMILIES", "METHODS", "SIZES", "TASKS", "TaskData", "load_task", "run"]

FAMILIES = recipes.FAMILIES
METHODS = ("reset_free", "ce_only", "classic", "reset_free_energy")
MODES = {"reset_free": ("none",), "ce_only": ("none",), "reset_free_energy": ("none",)}
MODES["classic"] = ("oracle", "periodic", "none")
LENGTHS = (1, 10, 100, 1000, 2000)


def train_model(data, family, method, size="quick", seed=0, window=200, verbose=0):
    """Trains one family one way on a task; returns `(model, seconds)`."""
    _, _, epochs, units = SIZES[size]
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose from {METHODS}.")
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    stream = data.train[
        "energy" if method == "reset_free_energy" else "temporal_intensity"
    ]
    model = recipes.build_model(
        family,
        stream.features.shape[1],
        data.num_classes,
        # The protocol's spiking models have twice the neurons (as size names do).
        size=units * (2 if family == "spiking" else 1),
        normalization=stream.features,
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


def score_prefixes(logits, stream, lengths=LENGTHS):
    """`recipes.score` (acc_f, acc_p, segment accuracy, noise confidence, detections) over the
    first N segments of a never-reset run (the first N segments of a never-reset run are a
    never-reset stream of N segments)."""
    probs = recipes.probabilities(logits)
    results = {}
    for n in lengths:
        if n > len(stream.segments):
            n = len(stream.segments)  # the whole stream
        if str(n) in results:
            continue
        end = int(stream.segments[n - 1, 1]) + 1
        prefix = dataclasses.replace(
            stream,
            features=stream.features[:end],
            labels=stream.labels[:end],
            mask=stream.mask[:end],
            segments=stream.segments[:n],
            intensity=None,
            waveform=None,
        )
        row = {"frames": end, **recipes.score(probs[:end], prefix, curve=False)}
        row.pop("hours", None)
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
        logits = recipes.stream_logits(model, test.features, resets)
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
