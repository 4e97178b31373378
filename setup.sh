#!/usr/bin/env bash
# Sets up slopeft from scratch: a fresh virtual environment in .venv with the project, its test
# tools and the pip-installable models. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first, pinned: an unpinned torch pulls a multi-GB CUDA build.
.venv/bin/pip install --quiet "torch==2.13.0"
.venv/bin/pip install --quiet -e ".[test,offline-models]"

# METEOR needs English WordNet 3.0; Debian ships it as wordnet-base (root only, best effort).
if [ ! -d /usr/share/wordnet ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq wordnet-base) >/dev/null 2>&1 \
    || echo "note: could not install wordnet-base; METEOR will be reported as unavailable"
fi

# Offline machines of this project keep the SloBench data beside the checkout.
if [ -d ../shared/data ] && ! grep -q SLOPEFT_DATA .venv/bin/activate; then
  echo "export SLOPEFT_DATA=\"$(cd ../shared/data && pwd)\"" >> .venv/bin/activate
  echo "SLOPEFT_DATA set to ../shared/data in .venv/bin/activate"
fi
echo "slopeft installed: . .venv/bin/activate && slopeft --help"
