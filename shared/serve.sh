#!/bin/sh
# Serves one function: its image's CMD, and how the local stack starts it (local/stack.py serve_argv), so that
# both run the same servers with the same arguments.
# Usage: serve.sh [FUNCTION [HOST [PORT [PYTHON]]]]; the defaults come from the environment, as Knative sets it.
set -eu
function=${1:-$FUNCTION} host=${2:-${HOST:-0.0.0.0}} port=${3:-${PORT:-8080}} python=${4:-python}
# On SIGTERM, in-flight requests finish for up to 600 s, the longest Service timeoutSeconds: Knative gives a pod
# that long before it kills it. (functions-framework's own CLI leaves gunicorn's 30 s, which would cut a long
# transcription short; its app is served here as that CLI serves it, one worker with threads.)
if [ "$function" = api ]; then
  exec "$python" -m uvicorn api.app:app --host "$host" --port "$port" --timeout-graceful-shutdown 600 \
    --log-level warning
fi
exec "$python" -m gunicorn --bind "$host:$port" --workers 1 --threads 8 --timeout 0 --graceful-timeout 600 \
  --log-level warning \
  "functions_framework:create_app(target='handle', source='functions/$function/main.py', signature_type='http')"
