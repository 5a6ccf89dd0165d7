"""The `resetfree` command line."""

import argparse
import sys
import time

FAMILIES = ("vanilla_rnn", "gru", "lstm", "ssm", "spiking")


def build_model(family, num_features, num_classes, units):
    """A per-frame classifier: one recurrent layer of `family`, then logits."""
    import keras

    from keras_resetfree import layers

    inputs = keras.Input((None, num_features))
    if family == "spiking":
        x = layers.SpikingRNN(units, threshold=0.02)(inputs)
        logits = layers.LeakyReadout(num_classes)(x)
    else:
        recurrent = {
            "vanilla_rnn": layers.VanillaRNN(units),
            "gru": layers.GRU(units),
            "lstm": layers.LSTM(units),
            "ssm": layers.SSM(units, state_size=units // 2),
        }[family]
        logits = keras.layers.Dense(num_classes)(recurrent(inputs))
    return keras.Model(inputs, logits, name=f"{family}_classifier")


def _windows(stream, length):
    """Cuts a stream into consecutive fixed-length training windows (no reset inside one)."""
    count = len(stream.labels) // length
    x = stream.features[: count * length].reshape(count, length, -1)
    y = stream.labels[: count * length].reshape(count, length)
    return x, y


def _scores(probs, stream):
    """acc_f over segment frames, acc_p at the last frame of each segment, noise confidence."""

    predicted = probs.argmax(-1)
    informative = stream.labels >= 0
    acc_f = float((predicted[informative] == stream.labels[informative]).mean())
    last = stream.segments[:, 1] - 1
    acc_p = float((predicted[last] == stream.segments[:, 2]).mean())
    noise_confidence = float(probs[~informative].max(-1).mean())
    return {"acc_f": acc_f, "acc_p": acc_p, "noise_confidence": noise_confidence}


def demo(args):
    """Trains on short never-reset windows, then streams a long stream frame-chunk by chunk."""
    import keras
    import numpy as np

    from keras_resetfree import ResetFreeLoss, Streamer
    from keras_resetfree.streams import template_stream

    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    num_classes, num_features = 4, 16
    train = template_stream(
        args.train_segments, num_classes, num_features, seed=args.seed
    )
    x, y = _windows(train, args.window)
    test = template_stream(
        args.test_segments, num_classes, num_features, seed=args.seed + 1
    )
    print(
        f"backend {keras.backend.backend()} | family {args.family} | train: {len(x)} windows of "
        f"{args.window} frames ({train.segments.shape[0]} segments) | test stream: "
        f"{len(test.labels)} frames, {test.segments.shape[0]} segments, never reset"
    )
    model = build_model(args.family, num_features, num_classes, args.units)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        # Cross-entropy on segment frames, KL to uniform on gap frames (label -1).
        loss=ResetFreeLoss(kl_weight=args.kl_weight, from_logits=True),
    )
    model.fit(x, y, batch_size=32, epochs=args.epochs, verbose=2 if args.verbose else 0)
    train_time = time.perf_counter() - start

    streamer = Streamer(model, batch_size=1)
    stream = test.features[None]
    start = time.perf_counter()
    logits = streamer.run(stream, chunk_size=args.chunk)[0]
    stream_time = time.perf_counter() - start
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    scores = _scores(probs, test)
    whole = keras.ops.convert_to_numpy(model.predict(stream, verbose=0))[0]
    parity = float(np.abs(whole - logits).max())
    print(
        f"trained in {train_time:.1f} s; streamed in chunks of {args.chunk} frames in {stream_time:.1f} s"
    )
    print(
        f"never-reset stream: acc_f {100 * scores['acc_f']:.1f} %  acc_p {100 * scores['acc_p']:.1f} %  "
        f"noise confidence {scores['noise_confidence']:.2f} (uniform = {1 / num_classes:.2f})"
    )
    print(f"streamed vs whole-stream logits: max |difference| {parity:.2e}")
    if not np.isfinite(logits).all():
        print("error: non-finite outputs on the stream", file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="resetfree",
        description="Recurrent networks that run on an endless stream and never reset.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser(
        "demo",
        help="end-to-end smoke run: train on never-reset windows, stream a long stream",
        description=(
            "Trains a per-frame classifier with ResetFreeLoss on a synthetic feature stream (class templates "
            "in noise, cut into fixed windows with no reset inside) and runs it with the "
            "Streamer over a much longer never-reset stream. Works offline on any backend "
            "(KERAS_BACKEND)."
        ),
    )
    p.add_argument("--family", choices=FAMILIES, default="gru")
    p.add_argument("--units", type=int, default=32)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--window", type=int, default=200, help="training window, frames")
    p.add_argument("--train-segments", type=int, default=3000)
    p.add_argument("--test-segments", type=int, default=1000)
    p.add_argument("--chunk", type=int, default=100, help="frames per Streamer call")
    p.add_argument(
        "--kl-weight", type=float, default=1.0, help="weight of the KL term on gaps"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(run=demo)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
