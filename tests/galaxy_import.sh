#!/usr/bin/env bash
# Build the collection tarball and import it with galaxy-importer, as Galaxy and Automation Hub do on
# upload, offline (`make galaxy-import`; part of `make test`).
#
# Usage: bash tests/galaxy_import.sh
#
# 1. galaxy-importer lives in its own cached venv, ~/.cache/deckhouse-platform/galaxy-importer-<hash>
#    (tests/galaxy/requirements.txt; the hash covers it and the Python; python3 unless
#    DKP_GALAXY_PYTHON names another).
# 2. `ansible-galaxy collection build` writes .local/galaxy/deckhouse-platform-<version>.tar.gz.
# 3. The tarball holds only what works from it: every path must match one of SHIPPED below (the
#    rest is in galaxy.yml build_ignore), and no directory may be empty. A new top-level file or
#    test directory fails here until it is shipped on purpose or ignored in galaxy.yml.
# 4. `python -m galaxy_importer.main` with tests/galaxy/galaxy-importer.cfg: ansible-doc of every
#    plugin, the roles (README.md, meta), the changelog, the EE files, flake8, and ansible-lint with
#    Galaxy's own options (offline). Its ansible-test step needs a container runtime and is off:
#    tests/sanity/run.sh runs ansible-test sanity.
# The step fails unless the importer completes and logs no ERROR and no WARNING (ansible-lint
# findings are logged as warnings). When ansible-lint exceeds the importer's time limit (180 s, a busy
# machine), the same lint command runs again without it and its findings count instead.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/deckhouse-platform
REQ=$ROOT/tests/galaxy/requirements.txt
PYTHON=${DKP_GALAXY_PYTHON:-python3}
OUT=$ROOT/.local/galaxy
START=$SECONDS

# Paths a tarball may contain (shell patterns on the path inside the tarball; `*` crosses `/`).
SHIPPED=(
    MANIFEST.json FILES.json README.md COPYING CHANGELOG.rst DEVELOPERS.md requirements.txt
    'meta' 'meta/*' 'plugins' 'plugins/*' 'roles' 'roles/*' 'playbooks' 'playbooks/*'
    'docs' 'docs/*' 'changelogs' changelogs/changelog.yaml changelogs/config.yaml
    'extensions' 'extensions/eda' 'extensions/eda/*'
    'tests' 'tests/unit' 'tests/unit/*'
)

# Whatever ansible-galaxy and galaxy-importer are to read comes from the arguments, not from the
# caller (the Makefile exports ANSIBLE_COLLECTIONS_PATH and ANSIBLE_CONFIG for the work tree).
while read -r var; do unset "$var"; done < <(compgen -e | grep '^ANSIBLE_' || true)

# 1. The venv (.complete is written last: an interrupted build is rebuilt, never used).
hash=$( { cat "$REQ"; "$PYTHON" -VV; } | sha256sum | cut -c1-12)
VENV=$CACHE/galaxy-importer-$hash
if [ ! -e "$VENV/.complete" ]; then
    t=$SECONDS
    echo "galaxy-import: creating $VENV"
    rm -rf "$VENV"
    mkdir -p "$CACHE"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
    touch "$VENV/.complete"
    echo "galaxy-import: venv ready in $((SECONDS - t))s"
fi
export PATH=$VENV/bin:$PATH

# 2. The tarball.
rm -rf "$OUT"
mkdir -p "$OUT/work" "$OUT/tmp"
(cd "$ROOT" && ansible-galaxy collection build --force --output-path "$OUT" >"$OUT/build.log" 2>&1) || {
    cat "$OUT/build.log" >&2
    echo "galaxy-import: ansible-galaxy collection build failed" >&2
    exit 1
}
TARBALL=$(find "$OUT" -maxdepth 1 -name 'deckhouse-platform-*.tar.gz' | head -n 1)
echo "galaxy-import: built ${TARBALL#"$ROOT"/} ($(du -k "$TARBALL" | cut -f1) KiB, $(tar -tzf "$TARBALL" | wc -l) entries)"

# 3. What it ships.
rc=0
if ! python3 - "$TARBALL" "${SHIPPED[@]}" <<'PYEOF'; then
"""Print tarball paths that no SHIPPED pattern allows, and empty directories."""
import fnmatch
import sys
import tarfile

tarball, patterns = sys.argv[1], sys.argv[2:]
with tarfile.open(tarball) as tar:
    members = tar.getmembers()
names = [m.name.rstrip('/') for m in members]
bad = [n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in patterns)]
dirs = [m.name.rstrip('/') for m in members if m.isdir()]
empty = [d for d in dirs if not any(n.startswith(d + '/') for n in names)]
for n in bad:
    print('galaxy-import: the tarball ships %s: ship it on purpose (tests/galaxy_import.sh SHIPPED) '
          'or add it to build_ignore in galaxy.yml' % n, file=sys.stderr)
for d in empty:
    print('galaxy-import: the tarball ships the empty directory %s/: add it to build_ignore' % d, file=sys.stderr)
sys.exit(1 if bad or empty else 0)
PYEOF
    rc=1
fi

# 4. The import. galaxy-importer writes importer_result.json to its working directory.
LOG=$OUT/importer.log
t=$SECONDS
irc=0
(cd "$OUT/work" && GALAXY_IMPORTER_CONFIG=$ROOT/tests/galaxy/galaxy-importer.cfg \
    GALAXY_IMPORTER_ANSIBLE_LOCAL_TMP=$OUT/tmp GALAXY_IMPORTER_TMP_ROOT_DIR=$OUT/tmp \
    ANSIBLE_LINT_SKIP_SCHEMA_UPDATE=1 NO_COLOR=1 \
    python -m galaxy_importer.main "$TARBALL" >"$LOG" 2>&1) || irc=$?
echo "galaxy-import: galaxy-importer $(pip show galaxy-importer 2>/dev/null | sed -n 's/^Version: //p') ran in $((SECONDS - t))s (rc=$irc; log ${LOG#"$ROOT"/})"

problems=$(grep -E '^(ERROR|WARNING|CRITICAL):' "$LOG" || true)

# galaxy-importer gives ansible-lint 180 s; a busy machine can need more. Then its lint step is run here,
# with the same command, without the limit: its findings fail the step, the time alone does not.
if printf '%s\n' "$problems" | grep -q '^ERROR: Timeout on call to ansible-lint$'; then
    problems=$(printf '%s\n' "$problems" | grep -v '^ERROR: Timeout on call to ansible-lint$' || true)
    LINT=$OUT/lint/ansible_collections/deckhouse/platform
    mkdir -p "$LINT" "$OUT/lint/tmp"
    tar -xzf "$TARBALL" -C "$LINT"
    t=$SECONDS
    lrc=0
    (cd "$LINT" && env ANSIBLE_COLLECTIONS_PATH="$OUT/lint" ANSIBLE_LOCAL_TEMP="$OUT/lint/tmp" \
        XDG_CACHE_HOME="$OUT/lint/tmp" ANSIBLE_LINT_SKIP_SCHEMA_UPDATE=1 NO_COLOR=1 \
        ansible-lint --profile production --exclude tests/integration/ --exclude tests/unit/ --format=pep8 \
        --nocolor -x yaml,var-naming,avoid-dot-notation,import-task-no-when,single-entry-point,use-loop \
        --offline >"$OUT/lint.log" 2>&1) || lrc=$?
    echo "galaxy-import: ansible-lint exceeded galaxy-importer's 180 s; run again without the limit: rc=$lrc in $((SECONDS - t))s"
    if [ "$lrc" != 0 ]; then
        problems=$(printf '%s\n%s' "$problems" "$(grep -E '^[^ ].*:[0-9]+(:[0-9]+)?: ' "$OUT/lint.log" | sed 's/^/WARNING: /')")
        problems=${problems#$'\n'}
        [ -n "$problems" ] || problems="ERROR: ansible-lint failed (rc=$lrc): see ${OUT#"$ROOT"/}/lint.log"
    fi
fi
if [ "$irc" != 0 ] || ! grep -q '^Importer processing completed successfully' "$LOG" || [ -n "$problems" ]; then
    rc=1
    echo "galaxy-import: galaxy-importer reported:" >&2
    if [ -n "$problems" ]; then
        printf '%s\n' "$problems" | head -n 80 >&2
    else
        tail -n 40 "$LOG" >&2
    fi
    if grep -q 'No role readme found' "$LOG"; then
        missing=$(tar -tzf "$TARBALL" | sed -n 's|^roles/\([^/]*\)/meta/main.yml$|\1|p' | while read -r role; do
            tar -tzf "$TARBALL" | grep -q -E "^roles/$role/README(\.md|\.rst|\.txt)?$" || echo "$role"
        done | tr '\n' ' ')
        echo "galaxy-import: galaxy-importer stops at the first role without README.md; roles without one: ${missing:-?}" >&2
    fi
fi
echo "galaxy-import: rc=$rc in $((SECONDS - START))s"
exit $rc
