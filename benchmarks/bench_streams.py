"""Input-pipeline benchmark: frames per second produced, and peak memory for a 10^6-frame stream.

    python benchmarks/bench_streams.py [--frames 1000000]

Builds a keyword stream lazily (`KeywordStream.chunks`) from synthesized
keywords and the Speech Commands background noise when `../shared/data`
has it (white noise otherwise), with MFCC features and the temporal-intensity
mask, and reports frames produced per second and the process's peak memory
growth (tracemalloc, Python allocations including numpy arrays) against the
size the same stream would take if held whole. For reference it also times
one training step of a GRU(64) on a batch of 32 windows of 200 frames, so
the two rates can be compared in the same run.
"""

import argparse
import time
import tracemalloc

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    args = parser.parse_args()

    from keras_resetfree import datasets, streams

    words = datasets.synthesize_keywords(n_per_word=20)
    try:
        noise = datasets.load_background_noise()
        noise_name = "Speech Commands _background_noise_"
    except FileNotFoundError:
        noise = [
            np.random.default_rng(0).normal(size=16000 * 30).astype("float32") * 0.05
        ]
        noise_name = "white noise"
    tracemalloc.start()
    builder = streams.KeywordStream(words, noise, num_segments=None, seed=0)
    chunks = builder.chunks()
    first = next(chunks)  # the noise bed is made on the first block
    baseline, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    produced, segments, informative = (
        len(first),
        len(first.segments),
        int(first.mask.sum()),
    )
    start = time.perf_counter()
    for piece in chunks:
        produced += len(piece)
        segments += len(piece.segments)
        informative += int(piece.mask.sum())
        if produced >= args.frames:
            break
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    whole_bytes = produced * (13 * 4 + 4 + 4)  # features + label + mask per frame
    print(
        f"stream: {produced:,} frames ({produced / 50 / 3600:.2f} h of audio at 50 frames/s), "
        f"{segments:,} keywords, noise: {noise_name}"
    )
    print(
        f"produced {produced / seconds:,.0f} frames/s ({seconds:.1f} s); "
        f"{produced / 50 / seconds:,.0f}x real time"
    )
    print(
        f"memory: {baseline / 2**20:.1f} MiB for the builder (noise bed, one block); peak "
        f"{(peak - baseline) / 2**20:.1f} MiB more while generating {produced:,} frames; "
        f"the stream held whole would take {whole_bytes / 2**20:.1f} MiB"
    )

    import keras

    from keras_resetfree import layers

    inputs = keras.Input((200, 13), batch_size=32)
    model = keras.Model(inputs, keras.layers.Dense(10)(layers.GRU(64)(inputs)))
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(32, 200, 13)).astype("float32")
    y = np.zeros((32, 200, 10), "float32")
    for _ in range(2):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(5):
        model.train_on_batch(x, y)
    train_rate = 5 * 32 * 200 / (time.perf_counter() - start)
    print(
        f"GRU(64) training consumes {train_rate:,.0f} frames/s on backend "
        f"{keras.backend.backend()}: the pipeline produces {produced / seconds / train_rate:.2f}x that"
    )


if __name__ == "__main__":
    main()
