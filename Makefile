# Two entry points, each doing its own set-up on a fresh machine:
#   make demo   - the end-to-end run (resetfree demo)
#   make test   - lint, then the whole test suite on TensorFlow, JAX and PyTorch
PYTHON ?= python3
VENV ?= .venv
BACKENDS ?= tensorflow jax torch
# A bare `torch` requirement pulls a multi-GB CUDA build on a CPU-only
# machine; install this CPU build first so the extra's range is satisfied.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
SLOW_BACKENDS ?= tensorflow
# pytest-xdist workers, one per core up to 4 (each holds a backend in memory);
# a test file stays on one worker, so its module fixtures are built once.
PYTEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)

# The ARM toolchain and emulator for `make mcu-test` (Debian / Ubuntu packages).
MCU_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint install clean mcu-test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet "$(TORCH_SPEC)"
	$(VENV)/bin/python -m pip install --quiet -e ".[jax,torch,audio,plot,tuning,tflm,dev]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	KERAS_BACKEND=$${KERAS_BACKEND:-tensorflow} $(VENV)/bin/resetfree demo

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Tests marked `slow` (end-to-end runs, searches, long streams) run on the
# backends in SLOW_BACKENDS only; every other test runs on all of BACKENDS.
test: lint
	@for backend in $(BACKENDS); do \
		case " $(SLOW_BACKENDS) " in *" $$backend "*) marks="";; *) marks="not slow";; esac; \
		echo "=== KERAS_BACKEND=$$backend $${marks:+(-m '$$marks')} ==="; \
		KERAS_BACKEND=$$backend TF_CPP_MIN_LOG_LEVEL=2 $(VENV)/bin/python -m pytest -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile -m "$$marks" $(PYTEST_ARGS) || exit 1; \
	done

# The exported model on a Cortex-M4 build of TFLite Micro under QEMU (mcu/check.py);
# TFLM sources from ../shared/tflm, or TFLM_DIR=<folder with reference/ and cmsis_nn/>.
mcu-test: $(VENV)/.installed
	@dpkg -s $(MCU_PACKAGES) >/dev/null 2>&1 || { \
		echo "installing $(MCU_PACKAGES)"; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(MCU_PACKAGES); }
	KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=3 $(VENV)/bin/python mcu/check.py --json mcu/build/results.json

clean:
	rm -rf $(VENV) build *.egg-info mcu/build
