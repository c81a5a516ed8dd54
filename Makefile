# One task runner for every check. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV        ?= .venv
PYTHON      ?= $(shell scripts/find-python.sh)
BIN         := $(VENV)/bin
export CAPILLARY_CACHE ?= $(HOME)/.cache/capillary
export CONTAINERS_CONF := $(CURDIR)/inventories/local/containers.conf
export ANSIBLE_CONFIG  := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)
# Python >= 3.12 gets ansible 14 (core 2.21); Python 3.11 gets the 2.19 floor.
PYMINOR     := $(shell $(PYTHON) -c 'import sys; print(sys.version_info[1])')
CONSTRAINTS := requirements/constraints$(if $(filter 11,$(PYMINOR)),-py311,).txt
VENV_INPUTS := requirements/dev.in requirements/integrations.in requirements/nodeps.txt $(CONSTRAINTS) pyproject.toml
VENV_KEY    := $(shell cat $(VENV_INPUTS) | sha256sum | cut -c1-12)
VENV_STAMP  := $(VENV)/.capillary-$(VENV_KEY)
PYTEST_ARGS ?=
# pytest runs on every core; tests that share the worker image or loop devices share an xdist group
# (tests/conftest.py), so they never overlap.
PYTEST_WORKERS ?= $(shell nproc)
ROLES_WITH_MOLECULE := $(patsubst roles/%/molecule/default/molecule.yml,%,$(wildcard roles/*/molecule/default/molecule.yml))

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## install the missing Debian packages (podman, runc, debootstrap, packer, bcftools...)
	@scripts/bootstrap-host.sh

$(VENV_STAMP): $(VENV_INPUTS)
	@echo "building $(VENV) on $(PYTHON) with $(CONSTRAINTS)"
	@rm -rf $(VENV) && $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -r requirements/dev.in -r requirements/integrations.in -c $(CONSTRAINTS)
	@$(BIN)/pip install -q --no-deps -r requirements/nodeps.txt
	@$(BIN)/pip install -q --no-deps -e .
	@touch $@

.PHONY: venv
venv: $(VENV_STAMP) ## the controller virtualenv, rebuilt only when its inputs change

.PHONY: image
image: deps ## the bookworm base image booting systemd (cached debootstrap tarball)
	@scripts/build-base-image.sh

.PHONY: setup
setup: deps venv image ## everything the tests and the demo need

.PHONY: lint
lint: venv ## ansible-lint, yamllint, ruff, mypy, packer fmt/validate
	$(BIN)/yamllint --strict .
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/ansible-lint --offline
	@$(MAKE) --no-print-directory packer-check

.PHONY: packer-check
packer-check: ## packer fmt -check and validate of every template
	@for f in packer/*.pkr.hcl; do [ -e "$$f" ] || continue; packer fmt -check -diff "$$f"; done
	@scripts/packer-validate.sh

.PHONY: unit
unit: venv ## pytest unit tests
	$(BIN)/pytest tests/unit collections/ansible_collections/capillary/pcgr/tests/unit $(PYTEST_ARGS)

.PHONY: pytest
pytest: setup ## pytest unit, integration and e2e tests (a skip fails unless it says "cannot run here")
	CAPILLARY_STRICT_SKIPS=1 $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=30 $(PYTEST_ARGS)

.PHONY: test-long
test-long: setup ## the long checks make test leaves out (production defaults waited out in real time): before a release
	CAPILLARY_LONG=1 CAPILLARY_STRICT_SKIPS=1 $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup -m long $(PYTEST_ARGS)

.PHONY: molecule
molecule: setup ## Molecule for every role that has a scenario, and the harness's own (ROLE=name for one)
	@for role in $(or $(ROLE),$(ROLES_WITH_MOLECULE)); do \
	  for scenario in roles/$$role/molecule/*/molecule.yml; do \
	    scenario=$$(basename $$(dirname $$scenario)); \
	    echo "=== molecule test: $$role ($$scenario)"; \
	    (cd roles/$$role && molecule test -s $$scenario) || exit 1; \
	  done; \
	done
	@[ -n "$(ROLE)" ] || $(MAKE) --no-print-directory molecule-harness

.PHONY: molecule-harness
molecule-harness: setup ## the harness's own scenario: a booted systemd target converges idempotently
	cd tests && molecule test -s harness

# The floor: ansible-core 2.19 on Python 3.11 (what Debian 12's interpreter can run). Our collection
# and playbooks must keep working there; this venv runs the checks that exercise ansible-core itself.
FLOOR_PYTHON ?= $(shell command -v python3.11 || ls $(HOME)/.pyenv/versions/3.11*/bin/python3.11 2>/dev/null | head -1)
FLOOR_VENV   := .venv-floor
FLOOR_KEY    := $(shell cat requirements/dev.in requirements/constraints-py311.txt pyproject.toml | sha256sum | cut -c1-12)

$(FLOOR_VENV)/.capillary-$(FLOOR_KEY): requirements/dev.in requirements/constraints-py311.txt pyproject.toml
	@echo "building $(FLOOR_VENV) on $(FLOOR_PYTHON) (ansible-core 2.19, the floor)"
	@rm -rf $(FLOOR_VENV) && $(FLOOR_PYTHON) -m venv $(FLOOR_VENV)
	@$(FLOOR_VENV)/bin/pip install -q --upgrade pip
	@$(FLOOR_VENV)/bin/pip install -q -r requirements/dev.in -c requirements/constraints-py311.txt
	@$(FLOOR_VENV)/bin/pip install -q --no-deps -e .
	@touch $@

.PHONY: floor
floor: deps $(FLOOR_VENV)/.capillary-$(FLOOR_KEY) ## the checks that exercise ansible-core, on the 2.19 floor (Python 3.11)
	@if [ -z "$(FLOOR_PYTHON)" ]; then echo "no Python 3.11 here: the floor is not checked" >&2; exit 1; fi
	@$(FLOOR_VENV)/bin/python -c 'import ansible.release as r; print("floor: ansible-core", r.__version__)'
	$(FLOOR_VENV)/bin/ansible-doc -l capillary.pcgr
	@for pb in $(wildcard playbooks/*.yml); do $(FLOOR_VENV)/bin/ansible-playbook --syntax-check "$$pb" >/dev/null || exit 1; done
	PATH=$(CURDIR)/$(FLOOR_VENV)/bin:$$PATH $(FLOOR_VENV)/bin/pytest -q -p no:cacheprovider $(FLOOR_TESTS)

FLOOR_TESTS ?= tests/integration/test_harness.py $(wildcard collections/ansible_collections/capillary/pcgr/tests/unit) $(wildcard tests/integration/test_spot_price_module.py tests/integration/test_lambda_event_invoke_config_module.py tests/integration/test_ec2_image_imds_support_module.py)

.PHONY: test
test: setup lint pytest molecule floor sanity ## the README's test command: install what is missing, then every check

.PHONY: demo
demo: setup ## THE MAIN COMMAND: the whole flow on this machine (endpoint, intake, bake, samples, workers)
	$(BIN)/python -m capillary.local.run $(DEMO_ARGS)

.PHONY: bench
bench: setup ## benchmarks; figures go to bench/results/
	$(BIN)/python -m bench

.PHONY: lock
lock: ## regenerate the constraints for this Python (constraints.txt, or -py311 on 3.11) from dev.in
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install -q -r requirements/dev.in $(if $(filter 11,$(PYMINOR)),,-r requirements/integrations.in)
	.lockvenv/bin/pip freeze --exclude capillary-pcgr > $(CONSTRAINTS) && rm -rf .lockvenv

# The products: the capillary.pcgr collection tarball and the capillary-pcgr wheel, in $(DIST).
# The collection is staged from its one source each: the collection directory (plugins, meta,
# extensions/eda, changelogs, docs) plus the repository's top-level roles/ and playbooks/ (their
# Molecule scenarios stay behind). Nothing is committed twice; the stage is rebuilt every time.
DIST       ?= dist
STAGE      ?= .cache/collection
COLLECTION := collections/ansible_collections/capillary/pcgr
COLLECTION_STAGE = $(STAGE)/ansible_collections/capillary/pcgr
COLLECTION_VERSION := $(shell sed -n 's/^version: *//p' $(COLLECTION)/galaxy.yml)
ANSIBLE_GALAXY ?= $(abspath $(BIN))/ansible-galaxy
ANSIBLE_TEST   ?= $(abspath $(BIN))/ansible-test
SANITY_PYTHON  ?= 3.$(PYMINOR)
SANITY_ARGS    ?=

.PHONY: collection-stage
collection-stage: ## stage the collection with roles/ and playbooks/ in $(STAGE) (what collection builds)
	@rm -rf $(STAGE) && mkdir -p $(COLLECTION_STAGE)
	@tar -C $(COLLECTION) --exclude=tests/output --exclude=__pycache__ --exclude=.pytest_cache -cf - . \
	  | tar -C $(COLLECTION_STAGE) -xf -
	@tar --exclude=molecule --exclude=__pycache__ --exclude=.cache -cf - roles playbooks \
	  | tar -C $(COLLECTION_STAGE) -xf -

.PHONY: collection
collection: collection-stage ## build the collection tarball into $(DIST) (ansible-galaxy collection install it)
	@mkdir -p $(DIST)
	$(ANSIBLE_GALAXY) collection build --force --output-path $(DIST) $(COLLECTION_STAGE)

.PHONY: wheel
wheel: ## build the capillary-pcgr wheel (with the catalogue as package data) into $(DIST)
	@mkdir -p $(DIST)
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir $(DIST) .
	@rm -rf build

.PHONY: ee-context
ee-context: collection wheel ## the execution environment's build context in $(DIST)/ee (then: ansible-builder build)
	$(abspath $(BIN))/ansible-builder create --file execution-environment.yml --context $(DIST)/ee

# ansible-test bootstraps pip into each sanity virtualenv with a script from ci-files.testing.ansible.com;
# where that is out of reach, scripts/ansible-test-get-pip.py does the same from pip's wheel.
ANSIBLE_TEST_CACHE := $(HOME)/.ansible/test/cache
ANSIBLE_TEST_PIP    = $(shell sed -n "s/^ *pip='\([0-9.]*\)',/\1/p" $$($(BIN)/python -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py)

.PHONY: ansible-test-pip
ansible-test-pip: venv
	@get_pip=$(ANSIBLE_TEST_CACHE)/get_pip_$(subst .,_,$(ANSIBLE_TEST_PIP)).py; \
	if [ ! -f "$$get_pip" ] && ! curl -fsSL -o "$$get_pip" https://ci-files.testing.ansible.com/ansible-test/get-pip-$(ANSIBLE_TEST_PIP).py 2>/dev/null; then \
	  rm -f "$$get_pip"; mkdir -p $(ANSIBLE_TEST_CACHE); \
	  $(BIN)/python -m pip download --quiet --no-deps --dest $(ANSIBLE_TEST_CACHE) pip==$(ANSIBLE_TEST_PIP); \
	  cp scripts/ansible-test-get-pip.py "$$get_pip"; \
	fi

# The stage gets its own (empty) git repository: ansible-test lists a collection's files with git
# and would otherwise find the checkout's, where the stage is ignored. The collections ours build
# on (amazon.aws for the doc fragments and module_utils) are found beside it, as ansible-test
# expects: linked from the `ansible` package in the venv.
.PHONY: sanity
sanity: collection-stage ansible-test-pip ## ansible-test sanity on the staged collection (the venv's Python, no containers)
	@git -C $(COLLECTION_STAGE) init -q
	@site=$$($(BIN)/python -c 'import ansible, os; print(os.path.dirname(os.path.dirname(ansible.__file__)))')/ansible_collections; \
	  for ns in amazon community ansible containers; do ln -sfn "$$site/$$ns" $(STAGE)/ansible_collections/$$ns; done
	cd $(COLLECTION_STAGE) && $(ANSIBLE_TEST) sanity --python $(SANITY_PYTHON) --local $(SANITY_ARGS)

.PHONY: clean
clean: ## remove the venv and the caches in the checkout (the image cache stays)
	rm -rf $(VENV) $(FLOOR_VENV) .cache .pytest_cache .mypy_cache .ruff_cache out

.PHONY: docs
docs: ## render docs/architecture.svg from docs/architecture.dot (graphviz)
	dot -Tsvg docs/architecture.dot -o docs/architecture.svg
