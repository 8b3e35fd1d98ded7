# Two commands matter: `make run` (the local stack) and `make test`. Both set themselves up.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian packages: libmagic sniffs upload types, Tesseract reads images (with the language packs of
# OCR_PACKS: the ocr image installs the same); the tests make speech with espeak-ng and videos with ffmpeg
# (the stages decode with PyAV, not ffmpeg); prometheus brings promtool, which checks the alert rules;
# catdoc reads Word 97-2003 files (.doc) in the extract stage (chosen over antiword by measurement, README).
OCR_PACKS := tesseract-ocr-eng tesseract-ocr-deu tesseract-ocr-fra tesseract-ocr-spa tesseract-ocr-ara tesseract-ocr-chi-sim
DEBS   := libmagic1 tesseract-ocr $(OCR_PACKS) catdoc espeak-ng ffmpeg prometheus
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
KUSTOMIZE ?= kubectl kustomize
OVERLAY ?= cpu
NS ?= mindspace

.PHONY: run run-containers test test-fast lint audit bench setup debs images onnx container-debs render features deploy revisions canary promote rollback clean help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv and install the Python packages (the other targets call it)

debs: ## install the Debian packages the stages and tests call
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# torch is installed first and pinned: any other release pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml | debs
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[all,test]'  # every function's group (pyproject.toml), the local stack, the tests
	@# MiniLM as ONNX graphs beside its weights (float, int8): the API and the embed stage run them without torch.
	$(BIN)/python -W ignore -m shared.onnx_embed
	touch $@

run: $(STAMP) debs ## start the local stack (embedded PostgreSQL, broker, every function, API)
	$(BIN)/mindspace run

# Twice: every test on the local stack's processes, then those that hold on containers too with every function
# run from its image (tests/test_containers.py among them), as Knative runs it.
test: $(STAMP) debs lint audit images ## lint and audit, build the images, then every test against real parts
	$(BIN)/pytest
	MINDSPACE_TEST_CONTAINERS=1 $(BIN)/pytest -m "on_containers or containers"

test-fast: $(STAMP) ## the tests that need no running stack, in seconds
	$(BIN)/pytest -m "not stack"

lint: $(STAMP) ## ruff (the rules in pyproject.toml) and hadolint on the Dockerfile
	$(BIN)/ruff check .
	$(BIN)/hadolint --config .hadolint.yaml Dockerfile

# pip-audit is not run: it needs PyPI's or OSV's vulnerability service, which this network cannot reach
# (README, "Security"). Run `pip-audit` where it can, e.g. in CI with network access.
audit: $(STAMP) ## bandit over the code: every finding fixed or explained where it is made (# nosec)
	@# Its log only repeats where a `# nosec` stands; shown when it finds something.
	$(BIN)/bandit -q -c pyproject.toml -r api events shared functions local 2>$(VENV)/bandit.log \
	  || { cat $(VENV)/bandit.log; exit 1; }

# ARGS=--quick: a smoke run of every benchmark (a minute or two).
bench: $(STAMP) debs images ## every benchmark (<25 min on 2 cores), written to docs/benchmarks.md; ARGS=--quick for a smoke run
	$(BIN)/python bench/run.py $(ARGS)

# --- images (one per function, from the one Dockerfile) -------------------------------------------
# podman and buildah from Debian; mmdebstrap makes the base image's stand-in where no registry is reachable.
CONTAINER_DEBS := podman buildah runc uidmap mmdebstrap
# A sandbox that refuses podman's default rlimits and cgroup manager names its settings here (see README).
CONTAINERS_CONF ?= $(wildcard ../shared/containers/containers.conf)
ifneq ($(CONTAINERS_CONF),)
export CONTAINERS_CONF := $(abspath $(CONTAINERS_CONF))
endif
FUNCTION ?=

container-debs: ## install podman, buildah and mmdebstrap (Debian packages)
	@$(MAKE) --no-print-directory debs DEBS="$(CONTAINER_DEBS)"

# MiniLM's ONNX graphs exported here, in the build context: torch never enters an image build.
onnx: build/onnx/model.onnx ## export MiniLM's ONNX graphs into build/onnx for the image builds
build/onnx/model.onnx: $(STAMP)
	$(BIN)/python -W ignore -m shared.onnx_embed "" build/onnx

images: onnx container-debs ## build every function's image mindspace-<function> (FUNCTION=x: one)
	local/build-images.sh $(FUNCTION)

# The local stand-in for a cluster: every function from its image, as Knative runs it (local/containers.py).
run-containers: images ## the local stack with every function run from its image (mindspace run --containers)
	$(BIN)/mindspace run --containers

# --- operators (a kube context with Knative Serving and Eventing) ---------------------------
render: ## print the Knative manifests of OVERLAY=cpu|gpu|production|dev
	$(KUSTOMIZE) knative/overlays/$(OVERLAY)

# Cluster-wide, once per cluster (the config-features ConfigMaps of knative-serving and knative-eventing).
features: ## turn on the Knative feature flags the manifests need (knative/cluster-features.yaml)
	kubectl apply --server-side --field-manager=mindspace -f knative/cluster-features.yaml

deploy: ## apply OVERLAY to namespace NS of the current kube context (make features first, once)
	$(KUSTOMIZE) knative/overlays/$(OVERLAY) | kubectl apply -n $(NS) -f -

# Traffic between revisions of one function: make canary SVC=embed PERCENT=10, then promote or rollback.
SVC ?= api
PERCENT ?= 10
revisions: ## SVC's revisions and its traffic split
	NS=$(NS) knative/rollout.sh revisions $(SVC)
canary: ## PERCENT of SVC's traffic to its latest revision
	NS=$(NS) knative/rollout.sh canary $(SVC) $(PERCENT)
promote: ## all of SVC's traffic to the candidate
	NS=$(NS) knative/rollout.sh promote $(SVC)
rollback: ## all of SVC's traffic back to the current revision
	NS=$(NS) knative/rollout.sh rollback $(SVC)

clean: ## remove .venv and .mindspace (all local data)
	rm -rf $(VENV) .mindspace build *.egg-info
