# netmeta — see README.md. Every target installs what it needs on a fresh Debian 12.
SHELL := /bin/bash
PY    := /usr/bin/python3
VENV  := .venv
STAMP := $(VENV)/.installed
APT_PKGS := containernetworking-plugins iproute2 python3-venv iptables iputils-ping
PYTEST_ARGS ?=

.PHONY: dev test demo bench apt clean

apt:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing" >&2; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; fi

$(STAMP): pyproject.toml | apt
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
	$(VENV)/bin/python -m meta.entrypoints $(VENV)/bin >/dev/null
	touch $(STAMP)

dev: apt $(STAMP)

test: dev
	bash tests/run.sh $(PYTEST_ARGS)

demo: dev
	$(VENV)/bin/python demo/demo.py

bench: dev
	$(VENV)/bin/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache
