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

.PHONY: help venv bins collection cluster-up cluster-down integration-smoke-1.75 demo test sanity lint docs-check units integration docs matrix matrix-ends galaxy-import bench clean

help:
	@echo "make demo        build what is needed, start the local DKP cluster, run the registry switch, stop it"
	@echo "make test        everything CI checks: sanity, lint, docs, unit tests (also on ansible-core $(firstword $(MATRIX_ENDS)) and $(lastword $(MATRIX_ENDS))), galaxy-importer, integration tests"
	@echo "make matrix      sanity and unit tests on every tested ansible-core, integration smoke on the newest"
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

# DKP_VERSION=1.75|1.76 (default 1.76): the DKP release the local cluster models.
DKP_VERSION ?= 1.76
cluster-up: venv bins collection
	$(PY) tests/harness/cluster.py up --dir $(CLUSTER_DIR) --dkp-version $(DKP_VERSION)

cluster-down: venv
	$(PY) tests/harness/cluster.py down --dir $(CLUSTER_DIR)

# Smoke run on DKP 1.75, in a cluster of its own (the 1.76 one at .local/cluster is not touched).
SMOKE_175_DIR := $(ROOT)/.local/cluster-smoke-1.75
SMOKE_175_TESTS ?= tests/integration/test_harness_versions.py tests/integration/test_harness_cluster.py \
	tests/integration/test_module_update_policy.py \
	"tests/integration/test_module_release.py::test_approval_is_read_as_go_parse_bool" \
	"tests/integration/test_module_release.py::test_approval_flow_is_waitable_and_idempotent" \
	"tests/integration/test_module_config.py::test_create_then_second_run_is_unchanged"
integration-smoke-1.75: venv bins collection
	$(PY) tests/harness/cluster.py up --dir $(SMOKE_175_DIR) --dkp-version 1.75
	rc=0; DKP_VERSION=1.75 DKP_HARNESS_VERSIONS=1.75 DKP_KUBECONFIG=$(SMOKE_175_DIR)/kubeconfig $(PY) -m pytest -q $(SMOKE_175_TESTS) || rc=$$?; \
	  $(PY) tests/harness/cluster.py down --dir $(SMOKE_175_DIR); exit $$rc

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
# --durations puts the slowest tests in every log, to keep `make test` inside CI's limit.
integration: venv bins collection
	$(PY) -m pytest -q --durations=25 tests/integration --ignore=tests/integration/test_roles_molecule.py
	$(PY) -m pytest -q --durations=10 tests/integration/test_roles_molecule.py

docs: venv collection
	bash tests/docs.sh $(VENV)

docs-check: venv collection
	bash tests/docs.sh $(VENV) --check

# The ansible-core matrix of tests/matrix/versions.txt, each version in its own cached venv: sanity and
# unit tests on every version, the integration smoke (tests/matrix/smoke.txt) on the newest.
# `make test` runs sanity and units on the lowest and the newest (MATRIX_ENDS).
MATRIX_ENDS := $(shell awk '!/^\#/ && NF {print $$1}' tests/matrix/versions.txt | sed -n '1p;$$p')
matrix: bins collection
	bash tests/matrix.sh --sanity --units all
	bash tests/matrix.sh --smoke $(lastword $(MATRIX_ENDS))

matrix-ends: collection
	bash tests/matrix.sh --sanity --units $(MATRIX_ENDS)

# Build the tarball and import it with galaxy-importer (offline, its own cached venv).
galaxy-import:
	bash tests/galaxy_import.sh

bench: venv bins collection
	$(PY) benchmarks/run.py --record

test: sanity lint docs-check units matrix-ends galaxy-import integration integration-smoke-1.75

clean:
	-$(PY) tests/harness/cluster.py down --dir $(CLUSTER_DIR)
	rm -rf .local
