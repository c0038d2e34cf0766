# xiaoshuo — every target does its own set-up, idempotently, on a fresh machine.
#   make webui   install, then start the WebUI
#   make demo    install, then start the WebUI on a random tiny model (Gemma 3 270M once `make llamacpp` ran)
#   make test    install, then run the whole test suite offline
#   make bench   install, then run the benchmarks under bench/
#   make llamacpp  install, then the llamacpp extra (llama-cpp-python: builds llama.cpp from source, minutes)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.xiaoshuo-installed
# Tests never touch the network and never oversubscribe the 2 CPU cores.
TEST_ENV := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 \
	GRADIO_ANALYTICS_ENABLED=False OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false \
	VLLM_CPU_KVCACHE_SPACE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 PYTHONUNBUFFERED=1

.PHONY: install test lint bench clean doctor webui demo browser book-tools llamacpp

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "xiaoshuo needs Python >= 3.11, found " + sys.version' 
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install -q --upgrade pip
	@if nvidia-smi -L 2>/dev/null | grep -q GPU; then extra=gpu; else extra=cpu; fi; \
	  echo "make install: using the '$$extra' extra"; \
	  $(PIP) install -q -e ".[$$extra,dev]"
	@# llama.cpp (the llamacpp backend, GGUF export, the realmodel tests): PyPI has only its source, so pip
	@# compiles it once (about 4 minutes on 2 cores; cached as a wheel afterwards). Without a C++ compiler the
	@# rest still works: those tests skip and say why.
	@$(PIP) install -q -e ".[llamacpp]" || echo "make install: llama-cpp-python did not build; the llamacpp backend and realmodel tests are off"
	@# PyPI's torchvision/torchaudio/torchcodec break transformers beside the CPU torch: drop them when they fail.
	@for m in torchvision torchaudio torchcodec; do \
	  if $(PIP) show -q $$m >/dev/null 2>&1 && ! $(PY) -c "import $$m" >/dev/null 2>&1; then \
	    echo "make install: removing $$m (fails to import beside this torch)"; $(PIP) uninstall -q -y $$m; fi; \
	done
	@touch $(STAMP)

llamacpp: install
	@echo "make llamacpp: installing llama-cpp-python; pip builds llama.cpp from source (a few minutes, needs a C++ compiler and cmake)"
	$(PIP) install -e ".[llamacpp]"
	@$(PY) -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__, 'installed: engine.backend = llamacpp')"

webui: install
	$(PY) -m xiaoshuo webui $(WEBUI_ARGS)

demo: install
	$(PY) -m xiaoshuo webui --demo $(WEBUI_ARGS)

# Browser tests need Debian's Chromium and a CJK font (`playwright install` cannot download here).
browser:
	@command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi "wenquanyi\|wqy" || \
	  { if [ "$$(id -u)" = 0 ]; then apt-get install -y -q chromium fonts-wqy-microhei >/dev/null || \
	      { apt-get update -q >/dev/null && apt-get install -y -q chromium fonts-wqy-microhei >/dev/null; } || \
	      echo "make browser: could not install chromium; browser tests will be skipped"; \
	    else echo "make browser: not root, skipping the chromium install"; fi; }

# Book export tests check EPUB/DOCX with independent readers: Debian's epubcheck (Java) and pandoc.
book-tools:
	@command -v pandoc >/dev/null 2>&1 && test -f /usr/share/java/epubcheck.jar || \
	  { if [ "$$(id -u)" = 0 ]; then apt-get install -y -q epubcheck pandoc >/dev/null || \
	      { apt-get update -q >/dev/null && apt-get install -y -q epubcheck pandoc >/dev/null; } || \
	      echo "make book-tools: could not install epubcheck/pandoc; their tests will be skipped"; \
	    else echo "make book-tools: not root, skipping the epubcheck/pandoc install"; fi; }

test: install browser book-tools
	$(PY) -m ruff check src tests bench start.py
	$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check src tests bench start.py

bench: install
	@mkdir -p bench/results
	@for f in bench/bench_*.py; do echo "== $$f"; $(TEST_ENV) $(PY) $$f || exit 1; done

doctor: install
	$(PY) -m xiaoshuo doctor

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
