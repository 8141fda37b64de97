# onnx-deploy: `make run` is the main job, `make test` runs every test.
# Both create .venv if it is missing and install into it, so on a fresh machine
# these two commands are all the set-up.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: install run notebooks-refresh pipeline test format bench lab clean

install: $(STAMP)

# Reinstall when the dependency list or the pinned versions change.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e ".[notebooks,test]"
	@touch $(STAMP)

## The main job: execute every notebook with papermill into artifacts/executed/ (device=cuda
## when a GPU is present) and print a summary table (also artifacts/executed/summary.json).
run: install
	$(BIN)/python -m onnx_deploy.notebooks run --notebooks notebooks --out-dir artifacts/executed

## Re-execute the notebooks in place on the CPU, so committed outputs come from a full run.
notebooks-refresh: install
	$(BIN)/python -m onnx_deploy.notebooks refresh --notebooks notebooks

## The command-line pipeline on one model: export, slim, validate, benchmark.
pipeline: install
	$(BIN)/onnx-deploy pipeline torchvision:resnet18 --out-dir artifacts/pipeline --force

## Every test: lint and format check, unit tests, and nbval over the notebooks.
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest tests
	$(BIN)/python -m pytest --nbval notebooks/ --nbval-current-env \
		--nbval-sanitize-with notebooks/nbval_sanitize.cfg -p no:cacheprovider

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## PyTorch eager vs ONNX Runtime FP32 on the CPU, as ratios (takes about a minute).
bench: install
	$(BIN)/onnx-deploy bench torchvision:resnet18 torchvision:mobilenet_v3_small --batch-sizes 1,8 \
		--output artifacts/bench.json --plot artifacts/bench.png --force

lab: install
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf artifacts .pytest_cache .ruff_cache
