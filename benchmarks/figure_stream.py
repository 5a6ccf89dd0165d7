"""A picture of a trained model on a long never-reset stream (like Figure 4 of the paper).

    python benchmarks/figure_stream.py [--task kws] [--method reset_free] [--size quick]

Trains one family one way (keras_resetfree.experiment), runs the whole test
stream through the Streamer without any reset, and draws `--seconds` of it
from `--start`: MFCC, the temporal-intensity mask, the per-frame posterior of
the true class and the maximum posterior, and each segment's decision (green
when right, red when wrong). Writes docs/images/long_stream_<task>_<method>.png.
"""

import argparse
from pathlib import Path

import keras
import numpy as np

from keras_resetfree import experiment, metrics, recipes

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=["kws", "fsdd"], default="kws")
    parser.add_argument("--family", choices=experiment.FAMILIES, default="gru")
    parser.add_argument("--method", choices=experiment.METHODS, default="reset_free")
    parser.add_argument("--size", choices=sorted(experiment.SIZES), default="quick")
    parser.add_argument(
        "--start", type=float, default=600.0, help="seconds into the test stream"
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = experiment.load_task(args.task, args.size)
    model, _ = experiment.train_model(data, args.family, args.method, args.size)
    test = data.test
    logits = recipes.stream_logits(model, test.features)
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    rate = test.frame_rate
    a = min(int(args.start * rate), max(len(test) - int(args.seconds * rate), 0))
    b = min(a + int(args.seconds * rate), len(test))
    t = np.arange(a, b) / rate
    segments = test.segments[(test.segments[:, 0] >= a) & (test.segments[:, 1] <= b)]
    decisions = metrics.segment_decision_frames(segments, test.mask)

    fig, axes = plt.subplots(3, 1, figsize=(14, 7), sharex=True)
    axes[0].imshow(
        test.features[a:b].T,
        aspect="auto",
        origin="lower",
        extent=(t[0], t[-1], 0, test.features.shape[1]),
    )
    axes[0].set_ylabel("MFCC")
    axes[1].step(t, test.mask[a:b], where="post", color="k", lw=0.8)
    for start, end, _ in segments:
        axes[1].axvspan(start / rate, end / rate, color="tab:blue", alpha=0.15)
    axes[1].set_ylabel("mask m_t\n(utterances shaded)")
    axes[2].plot(t, probs[a:b].max(-1), color="0.6", lw=0.8, label="max posterior")
    truth = np.full(b - a, np.nan)
    for start, end, label in segments:
        truth[start - a : end - a] = probs[start:end, label]
    axes[2].plot(t, truth, color="tab:blue", lw=1.2, label="posterior of the true word")
    for frame, (_, _, label) in zip(decisions, segments):
        guess = int(probs[frame].argmax())
        color = "tab:green" if guess == label else "tab:red"
        axes[2].plot(frame / rate, probs[frame, guess], "o", color=color, ms=7)
        axes[2].text(
            frame / rate,
            1.02,
            test.label_names[guess],
            color=color,
            fontsize=7,
            ha="center",
        )
    axes[2].axhline(1.0 / data.num_classes, color="k", ls=":", lw=0.8, label="uniform")
    axes[2].set_ylim(0, 1.12)
    axes[2].set_ylabel("posterior")
    axes[2].set_xlabel(
        f"seconds into a {len(test) / rate / 60:.0f}-minute never-reset stream"
    )
    axes[2].legend(fontsize=7, loc="upper right")
    accuracy = metrics.stream_decision_accuracy(probs, test.segments, test.mask)
    fig.suptitle(
        f"{args.family} trained {args.method} on {args.task} ({args.size}); never reset; decisions green = right, "
        f"red = wrong; acc_p over the whole stream {100 * accuracy:.1f} %",
        fontsize=9,
    )
    fig.tight_layout()
    out = ROOT / "docs" / "images" / f"long_stream_{args.task}_{args.method}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(
        f"wrote {out}; acc_p {100 * accuracy:.1f} % over {len(test.segments)} segments"
    )


if __name__ == "__main__":
    main()
