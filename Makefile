# Two commands matter: `make run` (the local stack) and `make test`. Both set themselves up.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian packages: libmagic sniffs upload types, Tesseract (+ English data) reads images; the tests
# make speech with espeak-ng and videos with ffmpeg (the stages decode with PyAV, not ffmpeg).
DEBS   := libmagic1 tesseract-ocr tesseract-ocr-eng espeak-ng ffmpeg
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
KUSTOMIZE ?= kubectl kustomize
OVERLAY ?= cpu
NS ?= mindspace

.PHONY: run test bench setup debs render deploy revisions canary promote rollback clean help
help:
	@echo "make run    start the local stack (embedded PostgreSQL, broker, stages, API)"
	@echo "make test   run the test suite against real parts"
	@echo "make bench  run the benchmarks in bench/"
	@echo "make render OVERLAY=cpu|gpu   print the Knative manifests"

setup: $(STAMP)

debs:
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
	$(BIN)/pip install -q -e '.[models,local,test]'
	touch $@

run: $(STAMP) debs
	$(BIN)/mindspace run

test: $(STAMP) debs
	$(BIN)/pytest

bench: $(STAMP) debs
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# --- operators (a kube context with Knative Serving and Eventing) ---------------------------
render:
	$(KUSTOMIZE) knative/overlays/$(OVERLAY)

deploy:
	$(KUSTOMIZE) knative/overlays/$(OVERLAY) | kubectl apply -n $(NS) -f -

# Traffic between revisions of one function: make canary SVC=embed PERCENT=10, then promote or rollback.
SVC ?= api
PERCENT ?= 10
revisions:
	NS=$(NS) knative/rollout.sh revisions $(SVC)
canary:
	NS=$(NS) knative/rollout.sh canary $(SVC) $(PERCENT)
promote:
	NS=$(NS) knative/rollout.sh promote $(SVC)
rollback:
	NS=$(NS) knative/rollout.sh rollback $(SVC)

clean:
	rm -rf $(VENV) .mindspace *.egg-info
