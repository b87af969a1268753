# The two commands of the README:  `make demo`  and  `make test`.
# Both create .venv on first use (pinned: constraints.txt keeps torch on the local CPU
# wheel and holds the fastapi / SQLAlchemy versions that Prefect 3.8 needs).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo ui deploy test test-slow test-all bench bench-quick lint clean-home

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	@$(BIN)/python -c "import torch; assert torch.__version__.endswith('+cpu') or torch.cuda.is_available(), torch.__version__"
	touch $(STAMP)

demo: $(STAMP)            ## the main job: a small feedback loop on embedded defaults
	$(BIN)/synthloop demo

ui: $(STAMP)              ## the dashboards: Prefect :4200 and MLflow :5000 on the embedded stores
	$(BIN)/synthloop ui

deploy: $(STAMP)          ## in a second shell, with `make ui` running: pools, deployments, a cpu worker
	PREFECT_API_URL=$${PREFECT_API_URL:-http://127.0.0.1:4200/api} \
	SYNTHLOOP_MLFLOW_URI=$${SYNTHLOOP_MLFLOW_URI:-http://127.0.0.1:5000} \
	$(BIN)/synthloop deploy --pool cpu --limit 1

test: $(STAMP)            ## the fast tier: every test not marked slow (pyproject's addopts)
	$(BIN)/python -m pytest

test-slow: $(STAMP)       ## the slow tier only: end-to-end (servers, workers, whole loops, benchmarks)
	$(BIN)/python -m pytest -m slow

test-all: $(STAMP)        ## both tiers in one run
	$(BIN)/python -m pytest -m ""

bench: $(STAMP)           ## the synthetic and simulated-target benchmarks (tables on stdout, JSON in benchmarks/results/); each real-data one is a command in docs/benchmarks.md
	$(BIN)/python -m benchmarks.bench_eye_generation
	$(BIN)/python -m benchmarks.bench_face_generation
	$(BIN)/python -m benchmarks.bench_train_throughput
	$(BIN)/python -m benchmarks.bench_feedback_loop
	$(BIN)/python -m benchmarks.bench_shift_ablation
	$(BIN)/python -m benchmarks.bench_gaze_da
	$(BIN)/python -m benchmarks.bench_gaze_da --appearance-only
	@if [ -f ../shared/data/real/mpiigaze-eyes-unlabeled/manifest.csv ]; then \
	  $(BIN)/python -m benchmarks.bench_gaze_da --real ../shared/data/real/mpiigaze-eyes-unlabeled; fi

bench-quick: $(STAMP)     ## the same set on a tiny budget (a smoke run, not results; every benchmark's --quick run is in tests/test_benchmarks_smoke.py)
	$(BIN)/python -m benchmarks.bench_eye_generation --quick --no-compile
	$(BIN)/python -m benchmarks.bench_face_generation --quick
	$(BIN)/python -m benchmarks.bench_train_throughput --quick
	$(BIN)/python -m benchmarks.bench_gaze_da --quick
	$(BIN)/python -m benchmarks.bench_feedback_loop --quick
	$(BIN)/python -m benchmarks.bench_shift_ablation --quick

lint: $(STAMP)
	$(BIN)/ruff check .

clean-home:               ## delete the embedded stores (./.synthloop)
	rm -rf .synthloop
