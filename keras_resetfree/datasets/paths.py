import os
from pathlib import Path

ENV_VAR = "KERAS_RESETFREE_DATA"


def _candidates(path):
    if path is not None:
        yield "the path argument", Path(path)
        return
    if os.environ.get(ENV_VAR):
        yield f"${ENV_VAR}", Path(os.environ[ENV_VAR])
    yield (
        "../shared/data beside the working directory",
        Path.cwd().parent / "shared" / "data",
    )
    # A source checkout: <repo>/keras_resetfree/datasets/paths.py -> <repo>/../shared/data
    yield (
        "../shared/data beside the source checkout",
        Path(__file__).resolve().parents[3] / "shared" / "data",
    )


def keras_cache_dir():
    """`$KERAS_HOME/datasets/keras_resetfree` (default `~/.keras/...`), where downloads go."""
    home = os.environ.get("KERAS_HOME") or os.path.join(
        os.path.expanduser("~"), ".keras"
    )
    return Path(home) / "datasets" / "keras_resetfree"


def data_dir(name=None, path=None):
    """Finds the folder that holds the datasets (or one dataset, `name`).

    Looks, in order, at: the `path` argument; the `KERAS_RESETFREE_DATA`
    environment variable; `../shared/data` beside the working directory or
    beside the source checkout; the Keras cache
    (`~/.keras/datasets/keras_resetfree`). The first folder that exists (and
    holds `name`, when given) wins.

    Args:
        name: a dataset folder inside the data folder, e.g. `"speech_commands"`.
        path: an explicit folder, the only place looked at when given: the
            data folder that holds `name`, or the dataset's folder itself.

    Returns:
        A `pathlib.Path`.

    Raises:
        FileNotFoundError: nothing found; the message lists every place looked at.
    """
    looked = []
    places = list(_candidates(path))
    if path is None:
        places.append(("the Keras cache", keras_cache_dir()))
    for label, folder in places:
        target = folder / name if name else folder
        if target.is_dir():
            return target
        if name and path is not None and folder.is_dir():
            return folder  # the dataset's own folder was given
        looked.append(f"{label}: {target}")
    raise FileNotFoundError(
        f"No data folder{' for ' + repr(name) if name else ''} found. Looked at:\n  "
        + "\n  ".join(looked)
        + f"\nPass path=..., or set {ENV_VAR} to the folder that holds the datasets."
    )
