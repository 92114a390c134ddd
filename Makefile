# `make demo` and `make test` each create .venv when it is missing and install the project into it.
SHELL  := /bin/bash
VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.salesfusion-installed
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: demo test services lint bench readme results experiments clean docs

$(STAMP): pyproject.toml
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install $(PIP_QUIET) -e ".[dev]" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/salesfusion demo

# Two test workers on two cores: one OpenMP/torch thread each, waiting passively (spinning
# threads of one worker would starve the other).
# The serving tests start a real PostgreSQL server and drive headless Chromium: the script
# installs the Debian packages when they are missing (make test fails without them).
services:
	scripts/install_services.sh

test: $(STAMP) services
	SALESFUSION_REQUIRE_SERVICES=1 HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE $(VENV)/bin/pytest -n 2 --dist loadgroup -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

# Benchmarks and results run with the thread settings the docs state (2 threads, passive
# OpenMP waiting); each results file records them with the commit, date and core count.
bench results: export OMP_NUM_THREADS := 2
bench results: export OMP_WAIT_POLICY := PASSIVE

bench: $(STAMP)
	$(PYTHON) benchmarks/panel_build.py
	HF_HUB_OFFLINE=1 $(PYTHON) benchmarks/synthetic.py

# The documentation site (docs/ with MkDocs Material, the API reference from the docstrings),
# built strictly: a broken link or anchor fails.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

readme: $(STAMP)
	$(VENV)/bin/salesfusion demo
	$(PYTHON) scripts/update_readme.py --only demo

# The neural results of the docs (about 2.5 hours on 2 cores): every preset on OR-weekly, the
# synthetic ablation, the peer libraries (installed here as the `bench` extra) and the TFT speed.
NEURAL_MODELS := multimodal lstm gru transformer bert_cnn ca_rnn memf gtm tft_multimodal msrl_bigru resnet_biattn_bilstm ensemble
results: $(STAMP)
	$(PYTHON) -m pip install $(PIP_QUIET) -e ".[dev,bench]" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
	$(PYTHON) benchmarks/_provenance.py --out runs/neural/provenance.json
	for model in $(NEURAL_MODELS); do HF_HUB_OFFLINE=1 $(VENV)/bin/salesfusion backtest --dataset online_retail --models $$model --out runs/neural/$$model || exit 1; done
	HF_HUB_OFFLINE=1 $(PYTHON) benchmarks/ablation.py --items 300 --epochs 15
	HF_HUB_OFFLINE=1 $(PYTHON) benchmarks/peers.py
	HF_HUB_OFFLINE=1 $(PYTHON) benchmarks/tft_speed.py
	HF_HUB_OFFLINE=1 $(PYTHON) benchmarks/launch.py --seeds 3 --ablation
	HF_HUB_OFFLINE=1 $(PYTHON) benchmarks/launch_signal.py --models "mean_launch_curve,median_launch_curve,lightgbm_launch,lightgbm_launch reference=mean,lightgbm_launch validation_folds=3,lightgbm_launch covariates=false,launch_ensemble of lightgbm_launch+mean curve,multimodal_launch"
	HF_HUB_OFFLINE=1 $(PYTHON) benchmarks/searchers.py --seeds 20 --budget 10
	HF_HUB_OFFLINE=1 $(PYTHON) benchmarks/covariates.py
	$(PYTHON) scripts/update_readme.py --only neural,peers,speed,ablation,launch,launch-ablation,launch-signal,searchers,covariates --neural-models "$(NEURAL_MODELS)" --launch-ablation benchmarks/results/launch.json

# The four ready-made experiments at their full (2-core) scale, their tables published to
# experiments/results/ (about 25 minutes with two jobs); a rerun computes only missing cells.
EXPERIMENTS := seed001_recurrent seed004_ablation cold_start seed000_comparison
experiments: export OMP_NUM_THREADS := 1
experiments: export OMP_WAIT_POLICY := PASSIVE
experiments: $(STAMP)
	for name in $(EXPERIMENTS); do HF_HUB_OFFLINE=1 $(VENV)/bin/salesfusion experiment experiments/$$name.yaml --out runs/experiments/$$name --jobs 2 --publish experiments/results/$$name || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
