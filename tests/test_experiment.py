import json

import numpy as np
import pytest

from keras_resetfree import experiment, recipes


@pytest.fixture
def smnist(shared_data):
    return experiment.load_task("smnist", "smoke")


@pytest.mark.slow
def test_protocol_runs_every_method_and_mode(smnist, tmp_path):
    out = tmp_path / "result.json"
    result = experiment.run(
        "smnist", families=("gru",), size="smoke", out=out, log=lambda _: None
    )
    saved = json.loads(out.read_text())
    assert saved["runs"].keys() == {f"gru/{m}" for m in experiment.METHODS}
    assert set(saved["runs"]["gru/classic"]["eval"]) == {"oracle", "periodic", "none"}
    by_length = saved["runs"]["gru/reset_free"]["eval"]["none"]["by_length"]
    assert list(by_length) == [
        "1",
        "10",
        "12",
    ]  # prefixes, the last is the whole stream
    for row in by_length.values():
        assert 0.0 <= row["acc_p"] <= 1.0 and 0.0 < row["noise_confidence"] <= 1.0
    assert result["test_segments"] == 12


def test_reset_logits_equal_a_streamer_reset_at_the_same_frames(smnist):
    from keras_resetfree import Streamer

    model, _ = experiment.train_model(smnist, "gru", "classic", "smoke")
    features = smnist.test.features
    resets = smnist.test.segments[:, 0]
    batched = recipes.stream_logits(model, features, resets)
    streamer = Streamer(model)
    bounds = [0, *[int(r) for r in resets if r > 0], len(features)]
    pieces = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        streamer.reset()
        pieces.append(streamer.run(features[None, a:b], chunk_size=b - a)[0])
    np.testing.assert_allclose(batched, np.concatenate(pieces), atol=1e-5)
    never = recipes.stream_logits(model, features)
    assert not np.allclose(never, batched, atol=1e-3)  # resets matter


def test_cli_experiment(shared_data, tmp_path, capsys):
    from resetfree_cli import main

    out = tmp_path / "result.json"
    args = [
        "experiment",
        "--task",
        "smnist",
        "--size",
        "smoke",
        "--families",
        "vanilla_rnn",
    ]
    assert main([*args, "--methods", "reset_free", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "vanilla_rnn reset_free" in printed
    saved = json.loads(out.read_text())
    assert (
        saved["runs"]["vanilla_rnn/reset_free"]["eval"]["none"]["by_length"]["12"][
            "frames"
        ]
        > 0
    )


def test_unknown_task_and_size():
    with pytest.raises(ValueError, match="Unknown task 'asr'"):
        experiment.load_task("asr")
    with pytest.raises(ValueError, match="Unknown size 'huge'"):
        experiment.load_task("smnist", "huge")
    from keras_resetfree import tuning

    with pytest.raises(ValueError, match="supports 'kws' and 'fsdd'"):
        tuning.keyword_task_streams("smnist")
