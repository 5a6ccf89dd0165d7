"""Assembles benchmarks/results/reproduce_<size>_<task>.json into docs/results.md and plots.

    python benchmarks/report.py --size full

Writes docs/results.md (tables of acc_f / acc_p per family x method x stream
length, noise confidence and false alarms per hour, wall times) and
docs/images/accuracy_vs_length_<task>.png (acc_p against stream length, each
family's reset-free model against its baselines, as Figure 5 of the paper).
"""

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABELS = {
    ("reset_free", "none"): "reset-free, no reset",
    ("reset_free_energy", "none"): "reset-free (energy mask), no reset",
    ("ce_only", "none"): "CE only, no reset",
    ("classic", "oracle"): "classic, oracle reset",
    ("classic", "periodic"): "classic, periodic reset",
    ("classic", "none"): "classic, no reset",
}
TASK_NAMES = {
    "kws": "Keyword spotting, Speech Commands subset (10 words, held-out speakers)",
    "fsdd": "Spoken digits, FSDD (held-out speaker)",
    "smnist": "Sequential Fashion-MNIST with MNIST distractors",
}


def _rows(result):
    for key, run in result["runs"].items():
        family, method = key.split("/")
        for mode, scores in run["eval"].items():
            yield family, method, mode, run["train_seconds"], scores


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = sorted({key.split("/")[0] for key in result["runs"]})
    fig, axes = plt.subplots(
        1, len(families), figsize=(3.2 * len(families), 3.2), sharey=True
    )
    axes = [axes] if len(families) == 1 else list(axes)
    for ax, family in zip(axes, families):
        for f, method, mode, _, scores in _rows(result):
            if f != family:
                continue
            lengths = sorted(scores["by_length"], key=int)
            ax.plot(
                [int(n) for n in lengths],
                [100 * scores["by_length"][n]["acc_p"] for n in lengths],
                marker="o",
                label=LABELS[(method, mode)],
                lw=2.5 if method == "reset_free" else 1.2,
            )
        ax.set_xscale("log")
        ax.set_title(family)
        ax.set_xlabel("segments in the never-reset stream")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("acc_p (%)")
    axes[-1].legend(fontsize=6, loc="lower left")
    fig.suptitle(TASK_NAMES.get(result["task"], result["task"]), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def table(result):
    lengths = sorted(
        next(iter(next(iter(result["runs"].values()))["eval"].values()))["by_length"],
        key=int,
    )
    head = " | ".join(f"acc_p @{n}" for n in lengths)
    lines = [
        f"| family | training / evaluation | {head} | acc_f @{lengths[-1]} | hit rate | noise conf. | FA/h | train s |",
        "|" + "---|" * (len(lengths) + 7),
    ]
    for family, method, mode, seconds, scores in _rows(result):
        by = scores["by_length"]
        last = by[lengths[-1]]
        cells = " | ".join(f"{100 * by[n]['acc_p']:.1f}" for n in lengths)
        fa = (
            f"{last['false_alarms_per_hour']:.0f}"
            if "false_alarms_per_hour" in last
            else "-"
        )
        hits = f"{100 * last['hit_rate']:.1f}" if "hit_rate" in last else "-"
        lines.append(
            f"| {family} | {LABELS[(method, mode)]} | {cells} | {100 * last['acc_f']:.1f} | "
            f"{hits} | {last['noise_confidence']:.2f} | {fa} | {seconds:.0f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="quick")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "results.md"))
    args = parser.parse_args()
    images = Path(args.out).parent / "images"
    images.mkdir(parents=True, exist_ok=True)
    sections = []
    for task in ("kws", "fsdd", "smnist"):
        path = Path(args.results) / f"reproduce_{args.size}_{task}.json"
        if not path.is_file():
            continue
        result = json.loads(path.read_text())
        picture = images / f"accuracy_vs_length_{task}_{args.size}.png"
        plot(result, picture)
        sections.append(
            f"## {TASK_NAMES[task]}\n\n"
            f"Test stream: {result['test_frames']:,} frames, {result['test_segments']} segments; "
            f"backend {result['backend']}; {result['seconds'] / 60:.1f} min for the task.\n\n"
            f"{table(result)}\n\n![acc_p against stream length](images/{picture.name})\n"
        )
    Path(args.out).write_text(
        f"# Results: reset-free against reset baselines ({args.size} run)\n\n"
        f"Made by `python benchmarks/reproduce.py --size {args.size}` then "
        f"`python benchmarks/report.py --size {args.size}`; every number below is read from the JSON "
        "those commands wrote. acc_p: accuracy of the prediction at each segment's last frame; acc_f: "
        "accuracy over the frames of segments; noise conf.: mean max-probability on noise frames "
        "(1/classes is uniform); hit rate and FA/h: share of utterances detected, and false alarms per hour, "
        "of a threshold-0.5 detector with 5-frame smoothing (audio tasks). "
        "'@N': over the first N segments of one never-reset run (the last column is the whole stream).\n\n"
        + "\n".join(sections)
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
