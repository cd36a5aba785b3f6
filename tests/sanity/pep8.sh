#!/usr/bin/env bash
# The pep8 test of ansible-test sanity on a few files, cheaply, as the strictest tested ansible-core
# (the lowest, 2.16: it also reports E701/E704) runs it.
#
# Usage: bash tests/sanity/pep8.sh FILE...
# Needs the pycodestyle venv that ansible-test sanity made (`bash tests/matrix.sh --sanity 2.16`, or any
# earlier run of it on this machine); prints nothing and exits 0 when the files are clean.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 FILE..." >&2; exit 2; }
PY=$(find "$HOME/.ansible/test/venv/sanity.pep8/3.11" -mindepth 3 -maxdepth 3 -path '*/bin/python' 2>/dev/null | head -n 1 || true)
if [ -z "$PY" ]; then
    echo "pep8: no ansible-test pep8 venv for Python 3.11 yet: run 'bash tests/matrix.sh --sanity 2.16' once" >&2
    exit 2
fi
# ansible-core 2.16's ignore list (ansible_test/_util/controller/sanity/pep8/current-ignore.txt).
exec "$PY" -m pycodestyle --max-line-length 160 --config /dev/null --ignore E203,E402,E741,W503,W504 "$@"
