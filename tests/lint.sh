#!/usr/bin/env bash
# ansible-lint (profile production, .ansible-lint) and yamllint (.yamllint), offline.
#
# Usage: bash tests/lint.sh VENV [ansible-lint options...]
#   VENV  the venv with ansible-core, ansible-lint and yamllint (the Makefile's).
# ansible-lint needs the collection installed: .local/collections/ansible_collections/
# deckhouse/platform is a symlink to this repository (as `make collection` makes it), and
# ANSIBLE_COLLECTIONS_PATH points there. `offline: true` in .ansible-lint and
# ANSIBLE_LINT_SKIP_SCHEMA_UPDATE keep it from installing dependencies or refreshing schemas.
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 VENV [ansible-lint options...]" >&2
    exit 2
fi
VENV=$(cd "$1" && pwd)
shift
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COLLECTIONS=$ROOT/.local/collections
START=$SECONDS

export PATH=$VENV/bin:$PATH
mkdir -p "$COLLECTIONS/ansible_collections/deckhouse"
ln -sfn "$ROOT" "$COLLECTIONS/ansible_collections/deckhouse/platform"
export ANSIBLE_COLLECTIONS_PATH=$COLLECTIONS
export ANSIBLE_LINT_SKIP_SCHEMA_UPDATE=1
export ANSIBLE_CONFIG=$ROOT/tests/ansible.cfg
export ANSIBLE_NOCOLOR=1 NO_COLOR=1
cd "$ROOT"

rc=0
echo "lint: yamllint"
yamllint --strict --format parsable . || rc=1
echo "lint: ansible-lint"
ansible-lint --offline --nocolor "$@" || rc=1
echo "lint: rc=$rc in $((SECONDS - START))s"
exit $rc
