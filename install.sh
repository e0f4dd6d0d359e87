#!/usr/bin/env bash
# Install everything lofi needs on Debian/Ubuntu: FluidSynth and a General MIDI soundfont (system
# packages, when run as root), then a virtual environment in .venv with lofi and its test tools.
set -euo pipefail
cd "$(dirname "$0")"

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  # chromium + chromium-driver: the studio's browser test (tests/test_studio_browser.py).
  if ! dpkg -s libfluidsynth3 fluid-soundfont-gm chromium chromium-driver >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libfluidsynth3 fluid-soundfont-gm python3-venv chromium chromium-driver >/dev/null
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first and pinned: an unpinned torch would pull several GB of CUDA wheels.
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
