"""Training throughput of every family against Keras's own layers, scan vs step, Streamer latency.

Run once per backend (each figure is measured in the same process as the
reference it is compared with, so the ratios hold on a noisy machine):

    KERAS_BACKEND=tensorflow python benchmarks/bench_layers.py
    KERAS_BACKEND=jax python benchmarks/bench_layers.py
    KERAS_BACKEND=torch python benchmarks/bench_layers.py

Prints a markdown table: frames per second (forward + backward, batch 32,
1,000 frames, 40 features, 64 units), the ratio to Keras's own layer of the
same kind, the SSM's scan path against the same SSM run step by step (and
against the same SSM with its recurrence removed, the most any scan could
reach: its dense projections alone), and the Streamer's per-frame latency for
a 64-unit GRU.
"""

import argparse
import time

import keras
import numpy as np

import keras_resetfree
from keras_resetfree import layers


def _train_step_rate(make_layer, batch, frames, features, repeats):
    """Frames per second of `train_on_batch` (forward + backward + Adam update)."""
    inputs = keras.Input((frames, features), batch_size=batch)
    outputs = keras.layers.Dense(8)(make_layer()(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, frames, features)).astype("float32")
    y = rng.normal(size=(batch, frames, 8)).astype("float32")
    for _ in range(2):  # trace / compile
        model.train_on_batch(x, y)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    return batch * frames / float(np.median(times))


class _NoRecurrenceCell(layers.SSMCell):
    def parallel_scan(self, projected, initial_state):
        m = self.modes
        states = projected[..., : 2 * m]
        return self._readout(states, projected[..., 2 * m :]), [states[:, -1]]


class _NoRecurrenceSSM(layers.SSM):
    cell_class = _NoRecurrenceCell


def _streamer_latency(units, features, steps):
    inputs = keras.Input((None, features))
    model = keras.Model(inputs, keras.layers.Dense(10)(layers.GRU(units)(inputs)))
    streamer = keras_resetfree.Streamer(model, batch_size=1)
    frame = np.random.default_rng(0).normal(size=(1, 1, features)).astype("float32")
    for _ in range(20):
        streamer.step(frame)
    start = time.perf_counter()
    for _ in range(steps):
        streamer.step(frame)
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--features", type=int, default=40)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stream-steps", type=int, default=500)
    args = parser.parse_args()
    u, shape = args.units, (args.batch, args.frames, args.features, args.repeats)

    pairs = [
        (
            "VanillaRNN",
            lambda: layers.VanillaRNN(u),
            lambda: keras.layers.SimpleRNN(u, return_sequences=True),
        ),
        (
            "GRU",
            lambda: layers.GRU(u),
            lambda: keras.layers.GRU(u, return_sequences=True),
        ),
        (
            "LSTM",
            lambda: layers.LSTM(u),
            lambda: keras.layers.LSTM(u, return_sequences=True),
        ),
    ]
    backend = keras.backend.backend()
    print(
        f"backend {backend}, keras {keras.__version__}; batch {args.batch}, {args.frames} frames, "
        f"{args.features} features, {u} units; median of {args.repeats} train steps\n"
    )
    print("| layer | ours, frames/s | Keras's own, frames/s | ratio |")
    print("|---|---|---|---|")
    for name, ours, theirs in pairs:
        a = _train_step_rate(ours, *shape)
        b = _train_step_rate(theirs, *shape)
        print(f"| {name} | {a:,.0f} | {b:,.0f} | {a / b:.2f}x |")

    scan = _train_step_rate(lambda: layers.SSM(u, state_size=u // 2), *shape)
    step = _train_step_rate(
        lambda: layers.SSM(u, state_size=u // 2, scan=False), *shape
    )
    print(
        f"| SSM, parallel scan | {scan:,.0f} | step by step: {step:,.0f} | {scan / step:.2f}x |"
    )
    # The most any scan can gain: the same SSM with its recurrence removed
    # (the state is just the projected input), i.e. only its dense parts.
    bound = _train_step_rate(lambda: _NoRecurrenceSSM(u, state_size=u // 2), *shape)
    print(
        f"| SSM without its recurrence (bound) | {bound:,.0f} | step by step: {step:,.0f} | "
        f"{bound / step:.2f}x |"
    )
    for name, make in (
        ("SpikingRNN (ALIF)", lambda: layers.SpikingRNN(u)),
        ("SpikingRNN (LIF)", lambda: layers.SpikingRNN(u, adaptive=False)),
        ("LeakyReadout", lambda: layers.LeakyReadout(u)),
    ):
        print(f"| {name} | {_train_step_rate(make, *shape):,.0f} | | |")

    latency = _streamer_latency(u, args.features, args.stream_steps)
    print(
        f"\nStreamer, GRU({u}) + Dense(10), one frame per step: {1e3 * latency:.3f} ms per frame "
        f"({1 / latency:,.0f} frames/s)"
    )


if __name__ == "__main__":
    main()
