# netmeta — see README.md. Every target installs what it needs on a fresh Debian 12.
SHELL := /bin/bash
PY    := /usr/bin/python3
VENV  := .venv
STAMP := $(VENV)/.installed
APT_PKGS := containernetworking-plugins iproute2 python3-venv iptables iputils-ping gcc libc6-dev \
            busybox-static podman runc protobuf-compiler
LIBEXEC  := $(abspath $(VENV))/libexec/netmeta
PYTEST_ARGS ?=

.PHONY: dev test demo bench apt clean shim wheels image

apt:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing" >&2; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; fi

$(STAMP): pyproject.toml | apt
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
	$(MAKE) --no-print-directory shim
	touch $(STAMP)

# The executables the runtime calls: the native shim (shim/netmeta-shim.c, ~1 ms to reach the
# daemon) named netmeta/sriov/fixipam; it runs the Python entries in $(LIBEXEC) when the
# daemon does not answer. Static when libc.a is there (`netmeta install` copies it to hosts
# whose glibc may be older). Without a C compiler the Python entries are installed instead.
shim: shim/netmeta-shim.c
	@$(VENV)/bin/python -m meta.install.entrypoints $(LIBEXEC) >/dev/null
	@if cc -O2 -Wall -static -DFALLBACK_DIR='"$(LIBEXEC)"' -o $(VENV)/bin/.netmeta-shim.tmp shim/netmeta-shim.c \
	   || cc -O2 -Wall -DFALLBACK_DIR='"$(LIBEXEC)"' -o $(VENV)/bin/.netmeta-shim.tmp shim/netmeta-shim.c; then \
	  for p in $$($(VENV)/bin/python -m delegates.registry); do cp $(VENV)/bin/.netmeta-shim.tmp $(VENV)/bin/.$$p.tmp && mv -f $(VENV)/bin/.$$p.tmp $(VENV)/bin/$$p; done; \
	  rm -f $(VENV)/bin/.netmeta-shim.tmp; \
	else echo "no C compiler: using the Python entries" >&2; $(VENV)/bin/python -m meta.install.entrypoints $(VENV)/bin >/dev/null; fi

dev: apt $(STAMP)

test: dev
	bash tests/run.sh $(PYTEST_ARGS)

demo: dev
	$(VENV)/bin/python demo/demo.py

bench: dev
	$(VENV)/bin/python bench/run.py

# The container image (conf/Containerfile) with podman, else buildah. BASE=localhost/... builds on a
# local base (e.g. debootstrap + podman import) where no registry is reachable. The Python
# dependencies come pinned and hash-checked (conf/image-requirements.txt) from build/wheels/.
IMAGE   ?= localhost/netmeta:0.1.0
BASE    ?= docker.io/library/debian:12-slim
BUILDER ?= $(shell command -v podman || command -v buildah)
WHEEL_PLATFORM := --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 --platform manylinux2014_x86_64

wheels: dev conf/image-requirements.txt
	$(VENV)/bin/pip download -q --disable-pip-version-check --no-deps $(WHEEL_PLATFORM) --require-hashes \
	  -r conf/image-requirements.txt -d build/wheels

image: wheels
	@test -n "$(BUILDER)" || { echo "make image needs podman or buildah (apt-get install podman)" >&2; exit 1; }
	$(BUILDER) build -f conf/Containerfile --build-arg BASE=$(BASE) -t $(IMAGE) .

clean:
	rm -rf $(VENV) .pytest_cache build
