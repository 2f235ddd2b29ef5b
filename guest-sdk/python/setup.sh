#!/usr/bin/env bash
# Installs what `prism build` and `prism run app.py` need: a venv with
# componentize-py and this SDK, where `prism` looks for it
# (${PRISM_PYTHON:-${XDG_DATA_HOME:-~/.local/share}/prism/python}).
# Run again after the SDK or its WIT changes.
set -euo pipefail
sdk=$(cd "$(dirname "$0")" && pwd)
venv=${PRISM_PYTHON:-${XDG_DATA_HOME:-$HOME/.local/share}/prism/python}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$sdk/requirements.txt"
# From a copy: pip builds in the directory it is given, and the checkout stays clean.
copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
cp -rL "$sdk/pyproject.toml" "$sdk/prism" "$copy/"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --force-reinstall "$copy"
echo "prism's Python toolchain is in $venv"
