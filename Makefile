# make demo  : create .venv, install, train a small model, sample, write a plot
# make test  : create .venv, install, run the test suite
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-$(subst =,-,$(subst /,_,$(TORCH)))

.PHONY: install test demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.py | $(BIN)/python
	$(BIN)/pip install "$(TORCH)"
	$(BIN)/pip install -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: install
	$(BIN)/python -m pytest -q -n 2 --durations=15 tests

demo: install
	$(BIN)/python main.py --config configs/vp/toy2d.py --workdir demo_out --mode train --config.training.n_iters=16000
	$(BIN)/python main.py --config configs/vp/toy2d.py --workdir demo_out --mode sample
	$(BIN)/python main.py --config configs/vp/toy2d.py --workdir demo_out --mode likelihood
	@echo "demo: scatter plot of samples next to the data in demo_out/samples/samples_pc_reverse_diffusion-none_N500_n2000_16000.png"

bench: install
	$(BIN)/python benchmarks/engine.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
