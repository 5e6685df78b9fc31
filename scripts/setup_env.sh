#!/usr/bin/env bash
# Make the project's environment from nothing: a virtual environment in .venv with the torch pair
# that imports beside torchvision, the pack's and the tests' requirements, real ComfyUI 0.3.75 in
# .cache/comfyui, Debian's opencv-doc sample media in .cache/opencv-doc and real animated webp clips in
# .cache/media-video. Idempotent and quick
# when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
VENV=$ROOT/.venv
CACHE=$ROOT/.cache
mkdir -p "$CACHE"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)

# torch first, pinned by a constraints file so no later requirement can swap it for another build.
printf 'torch==2.14.1\ntorchvision==0.29.1\n' > "$CACHE/torch-constraints.txt"
if ! "$VENV/bin/python" -c 'import torch, torchvision' 2>/dev/null; then
  "${PIP[@]}" -c "$CACHE/torch-constraints.txt" torch torchvision
fi
"${PIP[@]}" -c "$CACHE/torch-constraints.txt" -r requirements-dev.txt
# rtmlib, the maintained DWPose ONNX runner the DWPose tests compare against; without its dependencies,
# which would add opencv-python beside the OpenCV already installed (it needs nothing else new).
"${PIP[@]}" --no-deps rtmlib==0.0.16

# Real ComfyUI, its requirements (without torch: the pair above stays) and the pack linked in.
"$VENV/bin/python" tests/comfy_harness/provision.py --constraints "$CACHE/torch-constraints.txt"

# Debian's OpenCV sample data (messi5.jpg, vtest.avi): downloaded by package name, never committed.
if [ ! -f "$CACHE/opencv-doc/usr/share/doc/opencv-doc/examples/data/vtest.avi" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download opencv-doc >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download opencv-doc >/dev/null; })
  dpkg -x "$tmp"/opencv-doc_*.deb "$CACHE/opencv-doc"
  rm -rf "$tmp"
fi
# Debian's Chromium for the frontend tests (Playwright drives it; it never downloads a browser).
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# Real driving clips (animated webp) from a PyPI package, unpacked beside the venv rather than
# installed: ComfyUI's template package pins an older release of it without these clips.
MEDIA=comfyui-workflow-templates-media-video==0.3.101
if [ ! -f "$CACHE/media-video/.unpacked" ]; then
  tmp=$(mktemp -d)
  "$VENV/bin/python" -m pip download -q --no-deps --disable-pip-version-check -d "$tmp" "$MEDIA"
  "$VENV/bin/python" -m zipfile -e "$tmp"/comfyui_workflow_templates_media_video-*.whl "$CACHE/media-video"
  rm -rf "$tmp"
  echo "$MEDIA" > "$CACHE/media-video/.unpacked"
fi
echo "environment ready: $VENV"
