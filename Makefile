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

.PHONY: demo test lint install clean

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

test: lint
	@for backend in $(BACKENDS); do \
		echo "=== KERAS_BACKEND=$$backend ==="; \
		KERAS_BACKEND=$$backend TF_CPP_MIN_LOG_LEVEL=2 $(VENV)/bin/python -m pytest -p no:cacheprovider $(PYTEST_ARGS) || exit 1; \
	done

clean:
	rm -rf $(VENV) build *.egg-info
