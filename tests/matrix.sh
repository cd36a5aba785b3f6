#!/usr/bin/env bash
# The ansible-core version matrix of deckhouse.platform (tests/matrix/versions.txt).
#
# Usage: bash tests/matrix.sh [--sanity] [--units] [--smoke] [--venv-only] MINOR...
#   MINOR        2.16, 2.19, 2.20, 2.21 (a line of tests/matrix/versions.txt), or "all"
#   --sanity     ansible-test sanity (tests/sanity/run.sh) with that ansible-core
#   --units      the unit tests (pytest tests/unit) with that ansible-core
#   --smoke      the integration selection of tests/matrix/smoke.txt (needs `make bins`)
#   (no step)    --sanity --units
#   --venv-only  only create the venvs (to time or warm them)
#
# Each version gets its own cached venv, ~/.cache/deckhouse-platform/matrix-<minor>-<hash>, made from
# the Python of versions.txt (python3.X on PATH, else pyenv's) with the pinned ansible-core and the
# pins of pytest, kubernetes, PyYAML, cryptography and jmespath from tests/requirements.txt (the hash
# covers all of them, so a new pin makes a new venv). ansible-test sanity builds its own tool venvs
# under ~/.ansible/test/venv on first use per version (PyPI); later runs reuse them.
# Prints one line per step with its result and seconds, and fails when any step fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/deckhouse-platform
VERSIONS=$ROOT/tests/matrix/versions.txt
TOOLS="pytest kubernetes PyYAML cryptography jmespath"

steps=() minors=() venv_only=0
for arg in "$@"; do
    case $arg in
        --sanity | --units | --smoke) steps+=("${arg#--}") ;;
        --venv-only) venv_only=1 ;;
        all) mapfile -t -O "${#minors[@]}" minors < <(awk '!/^#/ && NF {print $1}' "$VERSIONS") ;;
        2.*) minors+=("$arg") ;;
        *) echo "usage: $0 [--sanity] [--units] [--smoke] [--venv-only] MINOR...|all" >&2; exit 2 ;;
    esac
done
[ ${#minors[@]} -gt 0 ] || { echo "usage: $0 [--sanity] [--units] [--smoke] [--venv-only] MINOR...|all" >&2; exit 2; }
[ ${#steps[@]} -gt 0 ] || steps=(sanity units)

find_python() {  # find_python 3.11 -> path of a python3.11
    local want=$1 p
    for p in "$(command -v "python$want" 2>/dev/null || true)" \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want".*/bin/"python$want"; do
        if [ -n "$p" ] && [ -x "$p" ] && "$p" -c 'import sys, venv' 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    echo "matrix: no Python $want found (on PATH as python$want or under pyenv)" >&2
    return 1
}

pins() {  # the tool pins of tests/requirements.txt, one per line
    local name
    for name in $TOOLS; do
        grep -i -E "^$name==" "$ROOT/tests/requirements.txt" || { echo "matrix: no pin of $name in tests/requirements.txt" >&2; return 1; }
    done
}

# make_venv MINOR -> prints the venv's python; builds the venv once. (Called in a command substitution
# with ||, where set -e does not apply: every step says `|| return 1`.)
make_venv() {
    local minor=$1 line patch pyver python reqs hash venv start
    line=$(awk -v m="$minor" '!/^#/ && $1 == m' "$VERSIONS")
    [ -n "$line" ] || { echo "matrix: $minor is not in tests/matrix/versions.txt" >&2; return 1; }
    read -r _ patch pyver <<<"$line"
    python=$(find_python "$pyver") || return 1
    reqs=$(pins) || return 1
    reqs=$(printf 'ansible-core==%s\n%s\n' "$patch" "$reqs")
    hash=$(printf '%s\n%s\n' "$reqs" "$("$python" -VV)" | sha256sum | cut -c1-12)
    venv=$CACHE/matrix-$minor-$hash
    # .complete is written last: a venv whose build was interrupted is rebuilt, never used.
    if [ ! -e "$venv/.complete" ]; then
        start=$SECONDS
        echo "matrix: creating $venv (ansible-core $patch, $("$python" -V))" >&2
        rm -rf "$venv"
        mkdir -p "$CACHE"
        "$python" -m venv "$venv" || return 1
        printf '%s\n' "$reqs" >"$venv/requirements.txt"
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$venv/requirements.txt" >&2 || return 1
        touch "$venv/.complete"
        echo "matrix: venv for $minor ready in $((SECONDS - start))s" >&2
    fi
    echo "$venv/bin/python"
}

summary=() rc=0
record() {  # record STEP MINOR RC SECONDS
    local word=passed
    [ "$3" = 0 ] || word="FAILED (rc=$3)"
    summary+=("matrix: $1 on ansible-core $2: $word in $4s")
    [ "$3" = 0 ] || rc=1
}

for minor in "${minors[@]}"; do
    start=$SECONDS
    py=$(make_venv "$minor") || { record venv "$minor" 1 $((SECONDS - start)); continue; }
    ver=$("$py" -c 'from ansible.release import __version__; print(__version__)')
    [ "$venv_only" = 0 ] || { record venv "$ver" 0 $((SECONDS - start)); continue; }
    for step in "${steps[@]}"; do
        start=$SECONDS
        src=0
        case $step in
            sanity)
                bash "$ROOT/tests/sanity/run.sh" "$py" || src=$?
                ;;
            units)
                (cd "$ROOT" && "$py" -m pytest -q -p no:cacheprovider tests/unit) || src=$?
                ;;
            smoke)
                # ansible_run.py starts ansible-playbook from the interpreter's own bin/, so the
                # playbooks run on this ansible-core too.
                echo "matrix: smoke with $("$(dirname "$py")/ansible-playbook" --version | head -n 1)"
                while read -r sel; do
                    case $sel in '' | '#'*) continue ;; esac
                    echo "matrix: smoke: pytest $sel"
                    (cd "$ROOT" && eval "PATH=\"$(dirname "$py"):\$PATH\" \"$py\" -m pytest -q -p no:cacheprovider $sel" </dev/null) || src=$?
                done <"$ROOT/tests/matrix/smoke.txt"
                ;;
        esac
        record "$step" "$ver" "$src" $((SECONDS - start))
    done
done

printf '%s\n' "${summary[@]}"
exit $rc
