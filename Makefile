# onnx-deploy: `make run` is the main job, `make test` runs every test.
# Both create .venv if it is missing and install into it, so on a fresh machine
# these two commands are all the set-up.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: test-families install serve-env js chromium emulator debian deps-run deps-test run notebooks-refresh pipeline test check-platforms lint-imports test-avx2 format bench bench-runtimes bench-optimum bench-olive lab clean

install: $(STAMP)

# Reinstall when the dependency list or the pinned versions change.
# pip installs one wheel at a time: .ci/install.py resolves once and installs the plan in two
# pip processes side by side (238 s -> 160 s here); where it fails, the plain install runs.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PYTHON) .ci/install.py $(VENV) -c constraints.txt -e ".[all]" || \
		$(PIP) install -q -c constraints.txt -e ".[all]"
	# onnxruntime-genai requires the CPU onnxruntime wheel, which must not sit beside
	# onnxruntime-gpu: --no-deps, and it runs on onnxruntime-gpu's module (src/onnx_deploy/infer/genai.py)
	$(PIP) install -q --no-deps onnxruntime-genai==0.18.0
	@touch $(STAMP)

## The serving environment: nvidia-pytriton (a real Triton) needs numpy < 2, so it gets its
## own venv; `onnx-deploy serve` finds ./.venv-serve. No torch in it.
SERVE_VENV  ?= .venv-serve
SERVE_STAMP := $(SERVE_VENV)/.installed
serve-env: $(SERVE_STAMP)

# nvidia-pytriton has Linux wheels only (glibc 2.35 or newer): elsewhere this says so and
# the serving tests skip.
$(SERVE_STAMP): pyproject.toml constraints-serve.txt
	@if [ "$$(uname -s)" != Linux ]; then \
	  echo "note: nvidia-pytriton (Triton) has Linux wheels only; the serving tests will skip"; \
	else \
	  { test -x $(SERVE_VENV)/bin/python || $(PYTHON) -m venv $(SERVE_VENV); } && \
	  $(SERVE_VENV)/bin/python -m pip --disable-pip-version-check install -q -c constraints-serve.txt -e ".[serve]" && \
	  touch $(SERVE_STAMP); \
	fi

## onnxruntime-web, onnxruntime-node and playwright-core, pinned in package.json and its
## lockfile. --ignore-scripts: onnxruntime-node's install script downloads GPU binaries from a
## host that is not reachable; its CPU binary is in the package.
js: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "note: no npm; the Node.js and browser checks will skip (apt-get install nodejs npm)"; fi

## Debian's Chromium for the browser test (playwright-core drives /usr/bin/chromium).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (for the browser test)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } || \
	    echo "note: chromium did not install; the browser test will skip"; \
	  else \
	    echo "note: no chromium; the browser test will skip (sudo apt-get install chromium)"; \
	  fi; }

# The package's bytecode, written once: an editable install leaves src/ uncompiled, and
# where PYTHONDONTWRITEBYTECODE is set (as on this project's machines) every process that
# imports onnx_deploy (each notebook kernel, each command a test runs) compiled it again.
PYC := $(BIN)/python -m compileall -q src >/dev/null

## What `run` and `test` need, installed side by side: pip installs on one core, so the
## serving environment, npm's packages and Debian's install on the other meanwhile
## (notebooks/MEASUREMENTS.md, "The test command's time"). apt-get takes one lock: Debian's
## packages install one after the other (`debian`).
deps-run:
	@$(MAKE) --no-print-directory -j4 install serve-env js chromium
deps-test:
	@$(MAKE) --no-print-directory -j4 install serve-env js debian
debian:
	@$(MAKE) --no-print-directory chromium
	@$(MAKE) --no-print-directory emulator

## The main job: execute every notebook with papermill into artifacts/executed/ (device=cuda
## when a GPU is present) and print a summary table (also artifacts/executed/summary.json).
run: deps-run
	$(PYC)
	$(BIN)/python -m onnx_deploy.teach.notebooks run --notebooks notebooks --out-dir artifacts/executed

## Re-execute the notebooks in place on the CPU, so committed outputs come from a full run.
notebooks-refresh: install
	$(BIN)/python -m onnx_deploy.teach.notebooks refresh --notebooks notebooks $(if $(ONLY),--only $(ONLY))

## The command-line pipeline on one model: export, slim, validate, benchmark.
pipeline: install
	$(BIN)/onnx-deploy pipeline torchvision:resnet18 --out-dir artifacts/pipeline --force

## QEMU's user-mode emulator: the tests check INT8 on an emulated x86 CPU without VNNI
## (AVX2 only) with it. Installed where this can (root, apt-get, x86-64); else they skip.
emulator:
	@command -v qemu-x86_64 >/dev/null 2>&1 || { \
	  if [ "$$(uname -m)" = x86_64 ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing qemu-user (for the emulated AVX2 INT8 test)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q qemu-user >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q qemu-user >/dev/null 2>&1; } || \
	    echo "note: qemu-user did not install; the emulated AVX2 test will skip"; \
	  else \
	    echo "note: no qemu-x86_64; the emulated AVX2 test will skip (sudo apt-get install qemu-user)"; \
	  fi; }

## Every test: lint and format check, the layer contract, unit tests, and nbval over the notebooks.
## The unit tests run in TEST_WORKERS pytest-xdist workers, a test file to each (their own
## fixtures, one PyTorch thread each: tests/conftest.py); the notebooks one after the other,
## alone on the machine, because they time things and assert on the timings.
TEST_WORKERS ?= 2
test: deps-test
	$(PYC)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest tests -n $(TEST_WORKERS) --dist loadfile
	$(BIN)/python -m pytest --nbval notebooks/ --nbval-current-env \
		--nbval-sanitize-with notebooks/nbval_sanitize.cfg -p no:cacheprovider

## Every model family in onnx_deploy.teach.families (about 40 Hugging Face architectures from
## tiny configs: text, vision, detection, audio, seq2seq) exported with `export hf:DIR` and no
## other flag, and validated; `make test` runs a subset of eleven, one per task.
test-families: install
	ONNX_DEPLOY_FAMILIES=all $(BIN)/python -m pytest tests/test_families.py -n $(TEST_WORKERS) \
		--durations=0 -p no:cacheprovider

## The dependencies (core and every extra) resolved for macOS arm64, Linux aarch64, Windows
## x86-64 and Linux x86-64 with uv, which evaluates environment markers for the target
## platform; each with its one ONNX Runtime wheel (about 30 s; part of `make test`).
check-platforms: install
	$(BIN)/python -m pytest tests/test_platforms.py

## The committed notebook outputs checked as on an x86 CPU without VNNI: nbval with a
## kernel that runs under QEMU's emulated AMD EPYC-Rome (AVX2). Copies get fewer timing
## iterations (emulated time means nothing); still slow: tens of minutes.
AVX2_DIR := artifacts/avx2
test-avx2: install emulator
	$(BIN)/python -m onnx_deploy.convert.emulate kernelspec $(AVX2_DIR)/jupyter
	mkdir -p $(AVX2_DIR)/notebooks
	for nb in notebooks/[0-9][0-9]_*.ipynb; do \
		$(BIN)/papermill --prepare-only -p warmup 1 -p iters 2 -p load_repeats 1 \
			$$nb $(AVX2_DIR)/notebooks/$$(basename $$nb) 2>/dev/null || exit 1; \
	done
	JUPYTER_PATH=$(CURDIR)/$(AVX2_DIR)/jupyter $(BIN)/python -m pytest --nbval $(AVX2_DIR)/notebooks \
		--nbval-kernel-name onnx-deploy-x86-no-vnni --nbval-cell-timeout 3000 \
		--nbval-sanitize-with notebooks/nbval_sanitize.cfg -p no:cacheprovider

## The layer contract alone (pyproject.toml, [tool.importlinter]): folders import downward only,
## the inference side never imports torch/torchvision/matplotlib, no import cycles.
lint-imports: install
	$(BIN)/lint-imports --no-cache

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## PyTorch eager vs ONNX Runtime FP32 on the CPU, as ratios (takes about a minute).
bench: install
	$(BIN)/onnx-deploy bench torchvision:resnet18 torchvision:mobilenet_v3_small --batch-sizes 1,8 \
		--output artifacts/bench.json --plot artifacts/bench.png --force

## ONNX Runtime vs OpenVINO (FP32 and bf16) vs PyTorch eager, with GFLOP/s and % of this
## machine's peak: resnet18, mobilenet_v3_small, efficientnet_b0 and BERT-base (110M, from its
## config) at seq 128, batch 1 and 8; the ONNX runtimes interleaved in 5 rounds (minutes).
RUNTIMES_DIR := artifacts/runtimes
bench-runtimes: install
	$(BIN)/python -c "from transformers import BertConfig, BertForSequenceClassification as M; \
	  M(BertConfig(num_labels=2)).save_pretrained('$(RUNTIMES_DIR)/bert-base')"
	$(BIN)/onnx-deploy bench torchvision:resnet18 torchvision:mobilenet_v3_small torchvision:efficientnet_b0 \
	  --runtimes onnxruntime,openvino,openvino-bf16 --rounds 5 --warmup 5 --iters 30 \
	  --batch-sizes 1,8 --output $(RUNTIMES_DIR)/cnn.json --plot $(RUNTIMES_DIR)/cnn.png --force
	$(BIN)/onnx-deploy bench hf:$(RUNTIMES_DIR)/bert-base --dim seq=1:128:512 \
	  --runtimes onnxruntime,openvino,openvino-bf16 --rounds 5 --warmup 5 --iters 30 \
	  --batch-sizes 1,8 --output $(RUNTIMES_DIR)/bert.json --plot $(RUNTIMES_DIR)/bert.png --force

## The report card's choice vs optimum-onnx's files on one BERT-base (110M, from its config),
## timed interleaved on ONNX Runtime at seq 128, batch 1 and 8. optimum-onnx 0.1.0 pins
## transformers 4.57, so it gets its own environment (about 6 GB with torch; tens of minutes:
## the card builds, judges and times every candidate on BERT-base).
OPTIMUM_VENV ?= .venv-optimum
bench-optimum: install
	@test -x $(OPTIMUM_VENV)/bin/optimum-cli || { $(PYTHON) -m venv $(OPTIMUM_VENV) && \
	  $(OPTIMUM_VENV)/bin/python -m pip --disable-pip-version-check install -q \
	    optimum-onnx==0.1.0 transformers==4.57.6 torch==2.14.1 onnxruntime-gpu==1.31.1; }
	$(BIN)/python -m onnx_deploy.workflows.compare_optimum --optimum-venv $(OPTIMUM_VENV) --out artifacts/optimum

## Microsoft Olive's goal-driven search (olive-ai: ONNX conversion, transformer fusions, INT8
## searched) on the same BERT-base and samples toward the card's objective, timed beside its choice; run
## bench-optimum first. olive-ai pins its own onnxruntime (the CPU wheel): its own env.
OLIVE_VENV ?= .venv-olive
bench-olive: install
	@test -x $(OLIVE_VENV)/bin/olive || { $(PYTHON) -m venv $(OLIVE_VENV) && \
	  $(OLIVE_VENV)/bin/python -m pip --disable-pip-version-check install -q \
	    olive-ai==0.13.0 torch==2.14.1 transformers==5.25.0 onnxruntime==1.32.0 \
	    torchmetrics==1.9.0 requests; }
	$(BIN)/python -m onnx_deploy.workflows.compare_olive --olive-venv $(OLIVE_VENV) --out artifacts/olive

lab: install
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf artifacts .pytest_cache .ruff_cache
