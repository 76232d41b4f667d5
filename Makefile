# Two commands do everything:  make repro  (the whole pipeline)  and  make test  (the tests).
# Each installs what it needs first and skips what is already done.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := .make
KERNEL := lmm
export DVC_NO_ANALYTICS := 1
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup repro test test-fast lint bench clean-venv help basic-pitch
help:
	@echo "make repro   - install what is missing, then run the pipeline (dvc repro)"
	@echo "make test    - install what is missing, then run the tests (pytest)"
	@echo "make setup   - only the installation steps"
	@echo "make lint    - ruff check (also run by make test)"
	@echo "make bench   - benchmark scripts (figures printed, nothing asserted)"
	@echo "make basic-pitch - the peer transcriber Basic Pitch (ONNX) in its own venv .venv-bp (make setup tries it once)"

setup: $(STAMP)/system $(STAMP)/python $(STAMP)/kernel $(STAMP)/git $(STAMP)/numba $(STAMP)/peer

$(STAMP)/system: scripts/install_system.sh
	@mkdir -p $(STAMP)
	bash scripts/install_system.sh
	@touch $@

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (found " + sys.version.split()[0] + "): install python3.11 or use environment.yml")'
	$(PYTHON) -m venv $(VENV)

$(STAMP)/python: pyproject.toml | $(BIN)/python
	@mkdir -p $(STAMP)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: the CPU build of 2.13.0; a looser requirement would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

$(STAMP)/kernel: $(STAMP)/python
	# Inside the venv (--sys-prefix): each clone has its own kernel "lmm", pointing at its own .venv.
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (lmm)" >/dev/null
	@touch $@

# librosa's numba code compiled into the venv's cache now, not on the first call inside a stage (every grid worker
# of the first mapping stage would compile the same DTW at once; lmm_utils/pipeline/warmup.py).
$(STAMP)/numba: $(STAMP)/python lmm_utils/pipeline/warmup.py
	$(BIN)/python -m lmm_utils.pipeline.warmup
	@touch $@

$(STAMP)/git: $(STAMP)/python
	# Offline-safe DVC (also in .dvc/config) and notebooks committed without outputs.
	$(BIN)/dvc config core.analytics false
	$(BIN)/dvc config core.check_update false
	-git rev-parse --git-dir >/dev/null 2>&1 && $(BIN)/nbstripout --install
	@touch $@

repro: setup
	$(BIN)/dvc repro

# Two pytest workers, a whole file each (the tiny-pipeline file shares one project across its tests); the slow
# files are collected first (tests/conftest.py) and kept first (xdist would otherwise send the files with the most
# tests first), so they start at once and the quick ones run beside them.
PYTEST := $(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

test: setup lint
	$(PYTEST)

lint: setup
	$(BIN)/ruff check .

test-fast: setup
	$(PYTEST) -m "not slow"

bench: setup
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean-venv:
	rm -rf $(VENV) $(STAMP)

# The peer line: Basic Pitch (Spotify, ICASSP 2022) in its own venv, so its pins never touch .venv.
# Its wheel ships the ONNX model (saved_models/icassp_2022/nmp.onnx), so nothing is downloaded at run
# time. Its declared requirements pull TensorFlow on Linux + Python 3.11, so it goes in without deps,
# plus exactly what its ONNX path imports (basic_pitch/inference.py, note_creation.py).
BP_VENV := .venv-bp
basic-pitch: $(BP_VENV)/.installed

$(BP_VENV)/.installed:
	$(PYTHON) -m venv $(BP_VENV)
	$(BP_VENV)/bin/python -m pip install -q --upgrade pip
	$(BP_VENV)/bin/python -m pip install -q --no-deps "basic-pitch==0.4.0"
	$(BP_VENV)/bin/python -m pip install -q onnxruntime "librosa>=0.10" "mir_eval>=0.7" "pretty_midi>=0.2.10" \
		"resampy>=0.2.2,<0.4.3" scipy numpy soundfile tqdm
	$(BP_VENV)/bin/python -c "import onnxruntime, basic_pitch.inference as i; assert i.ICASSP_2022_MODEL_PATH.suffix == '.onnx', i.ICASSP_2022_MODEL_PATH; print('basic-pitch OK:', i.ICASSP_2022_MODEL_PATH)"
	# one transcription now compiles the numba code it reaches (~25 s) into the venv, not inside the references stage;
	# a speed-up only: if it fails, the peer is still installed and compiles on its first file
	$(BP_VENV)/bin/python -m lmm_utils.evaluation.peers.basic_pitch_run --warm-up || echo "WARNING: Basic Pitch warm-up failed; its first file will compile"
	@touch $@

# make setup tries the peer once: it is optional (the references stage skips the peer line, with a note, while
# .venv-bp/.installed is missing), so a failure -- no network, say -- warns instead of failing setup / test / repro.
# The stamp records the attempt, not success, so an offline `make test` does not retry pip on every call;
# `make basic-pitch` retries.
$(STAMP)/peer:
	@mkdir -p $(STAMP)
	@if $(MAKE) --no-print-directory basic-pitch; then :; else \
		echo ""; \
		echo "WARNING: Basic Pitch (.venv-bp) could not be built; setup goes on without the peer line."; \
		echo "WARNING: the references stage skips it with a note. Retry with: make basic-pitch"; \
		echo ""; \
	fi
	@touch $@
