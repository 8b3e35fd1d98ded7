#!/usr/bin/env bash
# Builds mindspace-<function> for every function (or those named) from the one Dockerfile: `make images`,
# `make images FUNCTION=embed`; `--dev NAME…` builds the dev target instead (tests/test_containers.py). Uses podman, else buildah, else docker. Expects build/onnx (make onnx).
#
# BASE_IMAGE (python:3.11-slim-bookworm) is pulled if it can be. Where no container registry is reachable
# (an air-gapped build farm, this project's CI), a stand-in is made from Debian's packages with mmdebstrap:
# bookworm's own Python 3.11 in /usr/bin instead of the official image's build in /usr/local, the same
# Debian release underneath. It is tagged localhost/mindspace-python:3.11-bookworm-debian, never under the
# official name, and every build that uses it says so.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=${BASE_IMAGE:-docker.io/library/python:3.11-slim-bookworm}
STAND_IN=localhost/mindspace-python:3.11-bookworm-debian
# A build farm behind a TLS-inspecting proxy trusts it through the system bundle: pip and apt inside the
# build see the same one (mounted read-only, never copied into an image).
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
TAG=${TAG:-latest}

if command -v podman >/dev/null; then ENGINE=podman
elif command -v buildah >/dev/null; then ENGINE=buildah
elif command -v docker >/dev/null; then ENGINE=docker
else echo "make images needs podman, buildah or docker (make container-debs installs podman and buildah)" >&2; exit 1
fi

# --dev: the dev target (skaffold dev's reloading server, /app writable), tagged :dev.
target=()
if [ "${1:-}" = --dev ]; then target=(--target dev); TAG=dev; shift; fi
functions=("$@")
if [ ${#functions[@]} -eq 0 ]; then
  functions=(api $(for d in functions/*/; do [ -f "$d/main.py" ] && basename "$d"; done))
fi
[ -f build/onnx/model.onnx ] || { echo "build/onnx has no model.onnx: run make onnx first" >&2; exit 1; }

image_exists() {
  case $ENGINE in
    docker) docker image inspect "$1" >/dev/null 2>&1 ;;
    *) $ENGINE inspect --type image "$1" >/dev/null 2>&1 ;;
  esac
}

base=$BASE_IMAGE
if ! image_exists "$base" && ! $ENGINE pull -q "$base" >/dev/null 2>&1; then
  base=$STAND_IN
  if ! image_exists "$base"; then
    echo "images: $BASE_IMAGE cannot be pulled; making a stand-in from Debian bookworm's packages (mmdebstrap)"
    tar=$(mktemp --suffix=.tar)
    trap 'rm -f "$tar"' EXIT
    mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
      bookworm "$tar"
    case $ENGINE in
      buildah) ctr=$(buildah from scratch) && buildah add -q "$ctr" "$tar" / >/dev/null \
                 && buildah config --cmd python3 "$ctr" && buildah commit -q "$ctr" "$base" >/dev/null \
                 && buildah rm "$ctr" >/dev/null ;;
      *) $ENGINE import --change 'CMD ["python3"]' "$tar" "$base" >/dev/null ;;
    esac
  fi
  echo "images: built FROM $base, a stand-in for $BASE_IMAGE (Debian's Python 3.11 in /usr/bin)"
fi

mkdir -p build/logs
volume=()
[ -f "$CA_BUNDLE" ] && volume=(-v "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro")
for f in "${functions[@]}"; do
  echo "images: building mindspace-$f:$TAG"
  start=$SECONDS
  case $ENGINE in
    # The host's network: the build reaches the package registries as this machine does.
    podman|buildah) set -- "$ENGINE" build --pull=never --network=host "${volume[@]}" ;;
    docker) set -- docker build ;;
  esac
  if ! "$@" "${target[@]}" --build-arg "PYTHON_IMAGE=$base" --build-arg "FUNCTION=$f" -t "mindspace-$f:$TAG" . \
       >"build/logs/$f.log" 2>&1; then
    tail -n 40 "build/logs/$f.log" >&2
    echo "images: mindspace-$f failed to build; its whole log: build/logs/$f.log" >&2
    exit 1
  fi
  echo "images: mindspace-$f:$TAG in $((SECONDS - start)) s"
done
