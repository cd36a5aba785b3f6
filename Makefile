# deckhouse.platform: `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT := $(abspath .)
CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/deckhouse-platform
REQ_HASH := $(shell cat tests/requirements.txt requirements.txt | sha256sum | cut -c1-12)
VENV := $(CACHE)/venv-$(REQ_HASH)
PY := $(VENV)/bin/python
CLUSTER_DIR := $(ROOT)/.local/cluster
COLLECTIONS := $(ROOT)/.local/collections
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_CONFIG := $(ROOT)/tests/ansible.cfg
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_PYTHON_INTERPRETER := $(PY)

.PHONY: help venv bins collection cluster-up cluster-down demo test sanity lint docs-check units integration docs bench clean

help:
	@echo "make demo        build what is needed, start the local DKP cluster, run the registry switch, stop it"
	@echo "make test        everything CI checks: sanity, lint, unit and integration tests"
	@echo "make cluster-up  start the local DKP cluster (.local/cluster/kubeconfig); make cluster-down stops it"

$(PY): tests/requirements.txt requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $(PY)

venv: $(PY)

bins:
	@bash tests/k8s/build_bins.sh >/dev/null

# ansible-playbook finds the collection through .local/collections/ansible_collections/deckhouse/platform.
collection:
	@mkdir -p $(COLLECTIONS)/ansible_collections/deckhouse
	@ln -sfn $(ROOT) $(COLLECTIONS)/ansible_collections/deckhouse/platform

cluster-up: venv bins collection
	$(PY) tests/harness/cluster.py up --dir $(CLUSTER_DIR)

cluster-down: venv
	$(PY) tests/harness/cluster.py down --dir $(CLUSTER_DIR)

demo: venv bins collection
	$(PY) tests/harness/demo.py --dir $(ROOT)/.local/demo

sanity: venv
	bash tests/sanity/run.sh $(PY)

lint: venv collection
	bash tests/lint.sh $(VENV)

# pytest exits 5 when it collects nothing; that fails the target like any other failure.
units: venv collection
	$(PY) -m pytest -q tests/unit

# The role scenarios reset the simulator between their steps, so they get a cluster of their own
# (each pytest session starts one when none runs at .local/cluster, and stops it).
integration: venv bins collection
	$(PY) -m pytest -q tests/integration --ignore=tests/integration/test_roles_molecule.py
	$(PY) -m pytest -q tests/integration/test_roles_molecule.py

docs: venv collection
	bash tests/docs.sh $(VENV)

docs-check: venv collection
	bash tests/docs.sh $(VENV) --check

bench: venv bins collection
	$(PY) benchmarks/run.py --record

test: sanity lint docs-check units integration

clean:
	-$(PY) tests/harness/cluster.py down --dir $(CLUSTER_DIR)
	rm -rf .local
