#!/usr/bin/env bash
# ansible-test sanity for deckhouse.platform, offline except for PyPI (and Debian for shellcheck).
#
# Usage: bash tests/sanity/run.sh PYTHON [ansible-test sanity options...]
#   PYTHON  the venv interpreter that has ansible-core (the Makefile passes $(PY)).
#   Extra options go to `ansible-test sanity`, e.g. `--test pep8` or `-v`.
#
# Steps:
#  1. Mirror what git would check out (tracked + untracked-not-ignored files, as ansible-test
#     itself lists them) into .local/sanity/<ansible-core version>/ansible_collections/deckhouse/platform: ansible-test
#     must run from inside an ansible_collections/<ns>/<name> tree. The mirror gets its own
#     `git init` (no commit) so ansible-test lists files with git there and does not climb up to
#     this repository, whose .gitignore hides .local/.
#  2. Install tests/sanity/get_pip.py as ~/.ansible/test/cache/get_pip_<pip version>.py, the
#     bootstrap script ansible-test would otherwise download from a host outside PyPI, and
#     capture the caller's PIP_*/proxy settings for the venvs it creates (ansible-test runs pip
#     with an environment stripped down to PATH and HOME; pip's own config files still apply).
#  3. shellcheck: installed from Debian with apt-get when missing and we are root
#     (DKP_SANITY_APT=0 disables this; ansible-test then skips shellcheck with a warning).
#  4. ansible-test sanity --local --python X.Y (X.Y of PYTHON). --local still gives each test its
#     own venv with ansible-test's pinned tools; ansible-test keeps them in
#     ~/.ansible/test/venv/sanity.<test>/<X.Y>/<hash of the requirements>, so only the first run
#     on a machine builds them. (--requirements is not needed: for sanity it would only install
#     ansible-core's own requirements into PYTHON's venv.)
# There is no tests/sanity/ignore-*.txt and this script refuses to run with one: every finding
# is fixed at its source.
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 PYTHON [ansible-test sanity options...]" >&2
    exit 2
fi
PY=$1
shift
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=$HOME/.ansible/test/cache
BIN=$(dirname "$PY")
START=$SECONDS

if [ ! -x "$BIN/ansible-test" ]; then
    echo "sanity: $BIN/ansible-test not found (is ansible-core installed in that venv?)" >&2
    exit 2
fi
if compgen -G "$ROOT/tests/sanity/ignore-*.txt" >/dev/null; then
    echo "sanity: tests/sanity/ignore-*.txt is not allowed here: fix the findings instead" >&2
    exit 2
fi
PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# One mirror per ansible-core version, so the versions of tests/matrix.sh never share one.
CORE=$("$PY" -c 'from ansible.release import __version__; print(__version__)')
DEST=$ROOT/.local/sanity/$CORE/ansible_collections/deckhouse/platform

# 1. The mirror.
mkdir -p "$DEST"
"$PY" "$ROOT/tests/sanity/sync_tree.py" "$ROOT" "$DEST"
if [ ! -d "$DEST/.git" ]; then
    git -C "$DEST" init --quiet
fi

# 2. get-pip stand-in and pip settings for ansible-test's venvs.
PIP_VERSION=$("$PY" -c '
import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="'"$PYVER"'"))["pip"])')
GET_PIP=$CACHE/get_pip_${PIP_VERSION//./_}.py
mkdir -p "$CACHE"
if ! cmp -s "$ROOT/tests/sanity/get_pip.py" "$GET_PIP"; then
    cp "$ROOT/tests/sanity/get_pip.py" "$GET_PIP"
fi
"$PY" - "$CACHE/deckhouse_platform_pip.conf" <<'PYEOF'
"""Write the pip settings of this environment that ansible-test would strip to a pip.conf."""
import os
import sys

NAMES = {
    'PIP_INDEX_URL': 'index-url', 'PIP_EXTRA_INDEX_URL': 'extra-index-url',
    'PIP_TRUSTED_HOST': 'trusted-host', 'PIP_CERT': 'cert', 'PIP_CLIENT_CERT': 'client-cert',
    'PIP_PROXY': 'proxy', 'PIP_DEFAULT_TIMEOUT': 'timeout', 'PIP_TIMEOUT': 'timeout',
    'PIP_RETRIES': 'retries', 'PIP_NO_INDEX': 'no-index', 'PIP_FIND_LINKS': 'find-links',
}
settings = {}
for env, key in NAMES.items():
    if os.environ.get(env):
        settings[key] = os.environ[env]
if 'find-links' in settings and not all(os.path.exists(p) or '://' in p for p in settings['find-links'].split()):
    del settings['find-links']
proxy = os.environ.get('https_proxy') or os.environ.get('HTTPS_PROXY')
if proxy and 'proxy' not in settings:
    settings['proxy'] = proxy
path = sys.argv[1]
if settings:
    with open(path + '.tmp', 'w', encoding='utf-8') as f:
        f.write('[global]\n' + ''.join('%s = %s\n' % kv for kv in sorted(settings.items())))
    os.replace(path + '.tmp', path)
elif os.path.exists(path):
    os.unlink(path)
PYEOF

# 3. shellcheck.
if ! command -v shellcheck >/dev/null 2>&1; then
    if [ "${DKP_SANITY_APT:-1}" != 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "sanity: installing shellcheck from Debian (set DKP_SANITY_APT=0 to skip)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq shellcheck >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq shellcheck >/dev/null 2>&1; } \
            || echo "sanity: WARNING: could not install shellcheck; ansible-test will skip that test" >&2
    else
        echo "sanity: WARNING: shellcheck not installed; ansible-test will skip that test" >&2
    fi
fi

# 4. ansible-test, without the caller's ANSIBLE_* settings (the Makefile exports
# ANSIBLE_COLLECTIONS_PATH pointing at the work tree, which must not shadow the mirror).
while read -r var; do unset "$var"; done < <(compgen -e | grep '^ANSIBLE_' || true)
cd "$DEST"
rm -rf tests/output
rc=0
PATH="$BIN:$PATH" "$BIN/ansible-test" sanity --local --python "$PYVER" "$@" || rc=$?
echo "sanity: ansible-core $CORE (Python $PYVER): rc=$rc in $((SECONDS - START))s"
exit $rc
