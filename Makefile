# volplugin: the commands a newcomer needs. Everything installs what is missing first.
#   make up     the whole stack on a throw-away local Ceph + etcd (+ Docker engine if none runs)
#   make down   stop all of it and leave nothing behind
#   make test   lint, typecheck and every test (unit, integration on real Ceph/etcd, e2e on real dockerd)
#   make chaos  the fault-injection suite at full scale (SEED=N SCALE=X ONLY=a,b; see docs/chaos.md)
#   make plugin volplugin as a Docker managed plugin from the image (docs/managed-plugin.md)
SHELL := /bin/bash
.DEFAULT_GOAL := help

NATIVE := build/Release/volplugin_rbd.node
NATIVE_SOURCES := binding.gyp $(wildcard native/*.cc native/*.h)
TS_SOURCES := $(shell find src -name '*.ts' -o -name '*.proto' 2>/dev/null) tsconfig.json tsconfig.build.json package.json

.PHONY: help deps build up down test test-unit lint typecheck bench chaos image plugin clean

help:
	@sed -n '2,6p' Makefile | sed 's/^# *//'

deps:
	@scripts/deps.sh

$(NATIVE): $(NATIVE_SOURCES) | deps
	pnpm run build:native

dist/.built: $(TS_SOURCES) | deps
	pnpm run build:ts
	@touch $@

build: deps $(NATIVE) dist/.built

up: build
	@scripts/up.sh

down:
	@scripts/down.sh

lint: deps
	pnpm run lint

typecheck: deps
	pnpm run typecheck

test: build lint typecheck
	pnpm exec vitest run

test-unit: build
	pnpm exec vitest run --project unit

bench: build
	pnpm run bench

# Seeded; a count per scenario (SCALE=1: the full aims). Its own Ceph and etcd under .sandbox-chaos/.
SEED ?=
SCALE ?= 1
ONLY ?=
chaos: build
	node --import tsx test/chaos/main.ts --scale $(SCALE) $(if $(SEED),--seed $(SEED)) $(if $(ONLY),--only $(ONLY))

# The image compiles its own addon and TypeScript: nothing of the checkout's build goes in.
image: deps
	@scripts/image.sh

# The image's file system and docker/plugin/config.json, created in the engine as volplugin:latest.
plugin: deps
	@scripts/plugin.sh

clean: down
	rm -rf build dist .sandbox .sandbox-test .sandbox-chaos
