#!/usr/bin/env bash
# Sets up slopeft from scratch: a fresh virtual environment in .venv with the project, its test tools and
# the pip-installable models. Safe to re-run. Prints one line per step; any failure stops it (status ≠ 0).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
started=$SECONDS

# pip without its chatter. What is dropped: progress output (--quiet); the note pip prints for every
# package when its configuration names a package folder that does not exist on this machine ("Location
# ... is ignored: it is neither a file nor a directory"); setuptools' note that an editable install
# follows the project folder. Errors and every other warning still show, and pip's exit status is kept
# (pipefail), so a failed install stops the script.
pip_install() {
  PYTHONWARNINGS="ignore:Editable installation" .venv/bin/python -m pip install --quiet "$@" 2>&1 |
    { grep -v -E "^WARNING: Location '[^']*' is ignored: it is neither a file nor a directory\.$" || true; }
}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  echo "slopeft setup: new virtual environment .venv ($(.venv/bin/python -V))"
else
  echo "slopeft setup: reusing .venv ($(.venv/bin/python -V))"
fi
pip_install --upgrade pip
echo "  pip $(.venv/bin/python -m pip --version | cut -d' ' -f2)"
# torch first, pinned: an unpinned torch pulls a multi-GB CUDA build. numpy with it, or importing torch
# to print its version warns that numpy is missing.
pip_install "torch==2.13.0" numpy
echo "  torch $(.venv/bin/python -c 'import torch; print(torch.__version__)')"
# The extras: the test tools, the pip-installable models and bitsandbytes for QLoRA (CI adds distributed:
# SLOPEFT_EXTRAS=...).
pip_install -e ".[${SLOPEFT_EXTRAS:-test,offline-models,quantization}]"
.venv/bin/python - <<'EOF'
from importlib.metadata import version

import os

extras = os.environ.get("SLOPEFT_EXTRAS", "test,offline-models,quantization")
print(f"  slopeft {version('slopeft')} (editable, from this folder) with the extras {extras}")
print("  " + ", ".join(f"{name} {version(name)}" for name in ("transformers", "peft", "accelerate", "nltk", "sacrebleu")))
EOF

# METEOR needs English WordNet 3.0; Debian ships it as wordnet-base (root only, best effort).
if [ -d /usr/share/wordnet ]; then
  echo "  WordNet 3.0 for METEOR: /usr/share/wordnet"
elif command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] &&
  (apt-get update -qq && apt-get install -y -qq wordnet-base) >/dev/null 2>&1; then
  echo "  WordNet 3.0 for METEOR: installed wordnet-base (apt)"
else
  echo "  note: WordNet 3.0 is not installed (apt-get install wordnet-base); METEOR will be reported as unavailable"
fi

# Offline machines of this project keep the SloBench data beside the checkout.
if [ -d ../shared/data ] && ! grep -q SLOPEFT_DATA .venv/bin/activate; then
  echo "export SLOPEFT_DATA=\"$(cd ../shared/data && pwd)\"" >> .venv/bin/activate
fi
if grep -q SLOPEFT_DATA .venv/bin/activate; then
  echo "  data: SLOPEFT_DATA=$(sed -n 's/^export SLOPEFT_DATA="\(.*\)"$/\1/p' .venv/bin/activate | tail -1) (set in .venv/bin/activate)"
fi
echo "slopeft installed in $((SECONDS - started)) s: . .venv/bin/activate && slopeft --help"
