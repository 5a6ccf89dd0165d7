"""The README's Python snippets run as written, in order, in one namespace.

Blocks that start with `# slow:` (full trainings) are skipped; a block that
needs ../shared/data skips the rest when the data is absent.
"""

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_the_snippets():
    blocks = _blocks()
    assert len(blocks) >= 6
    assert sum(block.startswith("# slow:") for block in blocks) <= 2


@pytest.mark.slow
def test_readme_snippets_run_in_order(tmp_path, monkeypatch):
    pytest.importorskip("tflite_micro", reason="the tflm extra is not installed")
    monkeypatch.chdir(tmp_path)  # snippets write files (model_data.cc)
    namespace = {}
    ran = 0
    for index, block in enumerate(_blocks()):
        if block.startswith("# slow:"):
            continue
        try:
            exec(compile(block, f"README.md python block {index}", "exec"), namespace)
        except FileNotFoundError as error:
            if "shared" in str(error) or "data" in str(error):
                pytest.skip(f"README block {index} needs ../shared/data: {error}")
            raise
        ran += 1
    assert ran >= 5
    assert os.path.exists(tmp_path / "model_data.cc")
    assert namespace["piece"].features.shape[1] == 13
