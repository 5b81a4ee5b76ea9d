# Two commands: `make test` and `make demo`. Both create/refresh .venv/ first (idempotent:
# the stamp file is only rebuilt when a requirements file or setup.py changed).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
PIPC   := $(PIP) install -c requirements/constraints.txt
STAMP  := $(VENV)/.soc_mm_installed

.PHONY: venv test demo demo-mevis demo-long-video web clean-venv

venv: $(STAMP)

$(STAMP): requirements/constraints.txt requirements/build.txt requirements/runtime.txt requirements/tests.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIPC) -q -r requirements/build.txt
	# torch first, so that no later package makes pip resolve a CUDA torch from the registry.
	$(PIPC) -q "$$(grep '^torch==' requirements/runtime.txt)"
	$(PIPC) -q "$$(grep '^mmengine==' requirements/runtime.txt)"
	# mmcv 2.1.0 has only a source release: build it against the installed torch, with ops.
	# pip caches the built wheel (~/.cache/pip/wheels), so only the first set-up takes ~20 min.
	MMCV_WITH_OPS=1 $(PIPC) --no-build-isolation "$$(grep '^mmcv==' requirements/runtime.txt)"
	$(PIPC) -q -r requirements/runtime.txt -r requirements/tests.txt
	$(PIPC) -q --no-build-isolation --no-deps -e .
	touch $(STAMP)

# The suite in TEST_WORKERS processes (pytest-xdist), one test file per process at a time (--dist loadfile: a
# file's module fixtures are built once): most tests wait on a child process or run one thread, so 2 workers on
# 2 cores take about half the time of one. `make test TEST_WORKERS=0` runs it in this process alone.
TEST_WORKERS ?= 2
test: venv
	$(PY) -m pytest tests -q -p no:cacheprovider --durations=25 -n $(TEST_WORKERS) --dist loadfile

demo: venv
	$(PY) tools/demo/run_demo.py

# tiny SOC on synthetic MeViS: several objects per expression, motion-only expressions, no-target ones
demo-mevis: venv
	$(PY) tools/demo/run_mevis_demo.py

# tiny SOC on long synthetic Long-RVOS videos: per-clip vs linked vs linked + absence choice (docs/long_videos.md)
demo-long-video: venv
	$(PY) tools/demo/run_long_video_demo.py

# the web page (Gradio) on http://127.0.0.1:7860 serving the `make demo` model; e.g. WEB_ARGS="--port 8000"
web: venv
	$(PY) tools/demo/web_demo.py $(WEB_ARGS)

clean-venv:
	rm -rf $(VENV)
