"""Reproduces the paper's claim: every family trained four ways, scored on never-reset streams.

    python benchmarks/reproduce.py --size quick            # 11 min on 2 CPU cores (TF, measured)
    python benchmarks/reproduce.py --size full             # 43 min of task time (TF, measured)
    python benchmarks/report.py                            # tables and plots -> docs/results.md

Writes one JSON per task to benchmarks/results/reproduce_<size>_<task>.json
(the protocol is `keras_resetfree.experiment`). Needs ../shared/data (or a
data folder found by keras_resetfree.datasets.data_dir).
"""

import argparse
import time
from pathlib import Path

from keras_resetfree import experiment


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(experiment.SIZES), default="quick")
    parser.add_argument(
        "--tasks", nargs="+", choices=experiment.TASKS, default=list(experiment.TASKS)
    )
    parser.add_argument(
        "--families",
        nargs="+",
        choices=experiment.FAMILIES,
        default=list(experiment.FAMILIES),
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=experiment.METHODS,
        default=list(experiment.METHODS),
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for task in args.tasks:
        path = Path(args.out) / f"reproduce_{args.size}_{task}.json"
        experiment.run(
            task,
            args.families,
            args.methods,
            args.size,
            args.seed,
            out=path,
            log=lambda m: print(m, flush=True),
        )
        print(f"wrote {path}", flush=True)
    print(f"total {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
