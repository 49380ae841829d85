#!/usr/bin/env sh
# Builds src/*.py into build/{file}.wasm with componentize-py, which it first installs into .venv
# (python3 needed; again whenever duro-sdk/requirements.txt changes).
set -eu
cd "$(dirname "$0")"
if ! cmp -s duro-sdk/requirements.txt .venv/duro-requirements.txt 2>/dev/null; then
  echo "installing componentize-py into .venv" >&2
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r duro-sdk/requirements.txt
  cp duro-sdk/requirements.txt .venv/duro-requirements.txt
fi
exec .venv/bin/python duro-sdk/build.py --out build/{file}.wasm src/*.py
