import os
import subprocess
import sys

import numpy as np
import pytest

from keras_resetfree.datasets import data_dir
from keras_resetfree.streams import template_stream


def test_import_needs_no_optional_extra():
    """`import keras_resetfree` works on TensorFlow with jax, torch and tflite-micro absent."""
    code = (
        "import sys\n"
        "class Block:  # makes `import jax` (torch, ...) raise ImportError\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('jax', 'jaxlib', 'torch', 'tflite_micro'):\n"
        "            raise ImportError(name + ' is blocked for this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import keras_resetfree, keras\n"
        "x = keras_resetfree.layers.GRU(4)(keras.ops.ones((1, 3, 2)))\n"
        "print('ok', keras.backend.backend(), tuple(x.shape))\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "ok tensorflow (1, 3, 4)"


def _python(code, **env):
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )


def test_help_and_argument_errors_do_not_load_keras():
    code = (
        "import sys, resetfree_cli\n"
        "for argv in (['--help'], ['--version'], ['train', '--no-such-option']):\n"
        "    try:\n"
        "        resetfree_cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('loaded', sorted({'keras', 'tensorflow', 'keras_resetfree'} & set(sys.modules)))\n"
    )
    out = _python(code)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage: resetfree" in out.stdout and "resetfree 0." in out.stdout
    assert "the following arguments are required: --out" in out.stderr
    assert out.stdout.strip().splitlines()[-1] == "loaded []"


def test_import_prints_nothing():
    """TensorFlow's C++ start-up lines are not shown on import (they were 7 lines)."""
    out = _python("import keras_resetfree", KERAS_BACKEND="tensorflow")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout == "" and out.stderr == ""


def test_data_dir_order(tmp_path, monkeypatch):
    explicit = tmp_path / "explicit"
    (explicit / "fsdd").mkdir(parents=True)
    assert data_dir("fsdd", path=explicit) == explicit / "fsdd"
    assert (
        data_dir("mnist", path=explicit / "fsdd") == explicit / "fsdd"
    )  # a dataset folder itself
    with pytest.raises(FileNotFoundError, match="the path argument"):
        data_dir("mnist", path=tmp_path / "missing")
    from_env = tmp_path / "env"
    (from_env / "mnist").mkdir(parents=True)
    monkeypatch.setenv("KERAS_RESETFREE_DATA", str(from_env))
    assert data_dir("mnist") == from_env / "mnist"
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    with pytest.raises(FileNotFoundError, match="KERAS_RESETFREE_DATA") as error:
        data_dir("no_such_dataset")
    assert "Keras cache" in str(error.value)


def test_shared_data_found(shared_data):
    assert (shared_data / "speech_commands").is_dir()


def test_template_stream_layout():
    stream = template_stream(20, num_classes=3, num_features=5, seed=3)
    assert stream.features.shape == (len(stream.labels), 5)
    assert stream.segments.shape == (20, 3)
    for start, end, label in stream.segments:
        assert np.all(stream.labels[start:end] == label)
        assert stream.labels[start - 1] == -1 and stream.labels[end] == -1
    assert (stream.labels >= 0).sum() == (
        stream.segments[:, 1] - stream.segments[:, 0]
    ).sum()
    again = template_stream(20, num_classes=3, num_features=5, seed=3)
    np.testing.assert_array_equal(again.features, stream.features)


def test_demo_runs_small(capsys, tmp_path, monkeypatch):
    pytest.importorskip(
        "espeakng_loader", reason="the audio extra (espeakng-loader) is not installed"
    )
    from resetfree_cli import main

    monkeypatch.setenv(
        "KERAS_HOME", str(tmp_path)
    )  # the synthesized corpus is cached there
    code = main(
        ["demo", "--words", "yes", "no", "--per-word", "20", "--epochs", "1", "--train-segments", "40",
         "--test-segments", "10", "--units", "8", "--calibration-hours", "0.1",
         "--plot", str(tmp_path / "stream.png")]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert (
        "never-reset test stream" in out
        and "acc_p" in out
        and "false alarms per hour" in out
        and "on 0.1 h of validation audio" in out
        and "dB, 20-40 dB SNR" in out
    )
    difference = float(out.split("max |difference|")[1].split()[0])
    assert difference < 1e-4
    assert (tmp_path / "stream.png").is_file()


def test_cli_defaults_agree_with_the_library():
    # The parser keeps its own copies so that --help loads no Keras.
    import inspect

    import resetfree_cli
    from keras_resetfree import recipes
    from keras_resetfree.recipes import deploy

    assert resetfree_cli.FAMILIES == recipes.FAMILIES
    assert resetfree_cli.SIZE_NAMES == tuple(recipes.families.SIZES)
    per_channel = inspect.signature(deploy.convert_spotter).parameters["per_channel"]
    assert (resetfree_cli.WEIGHT_SCALES == "per-channel") == per_channel.default
    assert resetfree_cli.DEFAULT_SIZE == recipes.RecipeConfig().size
    assert resetfree_cli.CALIBRATION_HOURS == recipes.RecipeConfig().calibration_hours
