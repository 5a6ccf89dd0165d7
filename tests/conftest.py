import keras
import pytest


def pytest_report_header(config):
    return f"keras backend: {keras.backend.backend()} (keras {keras.__version__})"


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)  # seeds Python, NumPy and the backend


@pytest.fixture
def shared_data():
    """The `../shared/data` folder (or KERAS_RESETFREE_DATA); skips when absent."""
    from keras_resetfree.datasets import data_dir

    try:
        return data_dir()
    except FileNotFoundError as error:
        pytest.skip(f"shared data not available: {error}")


def backend():
    return keras.backend.backend()
