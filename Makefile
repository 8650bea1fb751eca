# Two set-up commands: `make demo` and `make test`. Both create .venv and install what they need.
# Pick your own torch build with e.g. `make test TORCH="torch==2.5.1+cu121 --index-url ..."`.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[test,train,onnx,web]"
	touch $(STAMP)

install: $(STAMP)

# The default of `unblur restore` (README, "The default"): it writes the restored photo, the before/after picture
# and the estimated kernel. A network instead: `make demo DEMO_ARGS="--model deeprftv2-tiny --save-filters"`.
DEMO_ARGS ?=

demo: $(STAMP)
	$(BIN)/unblur restore src/unblur/samples/blurred_camera.png -o demo-output $(DEMO_ARGS) --overwrite --side-by-side

# Two workers with one thread each: with two threads per worker, OpenMP's waiting threads of one worker starved the
# small, many-op tests of the other (the L0 kernel estimate ran many times slower inside the suite than alone).
test: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --durations=15

clean:
	rm -rf $(VENV) demo-output
