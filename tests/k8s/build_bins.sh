#!/usr/bin/env bash
# Build (or reuse) the local DKP test cluster's binaries and print their folder.
#
# kube-apiserver, kube-controller-manager, etcd (and kubectl when the machine has
# none) come from the wrapper module in tools/, kwok from its own module; all from
# the Go module proxy. The cache key covers go.mod, go.sum, the Go version and the
# kwok pin, so a warm cache costs no build and any pin change rebuilds.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
KWOK_VERSION=v0.8.0
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly

k8s_version=$(awk '$1=="k8s.io/kubernetes"{print $2; exit}' "$here/tools/go.mod")
key=$( { cat "$here/tools/go.mod" "$here/tools/go.sum"; go version; echo "kwok $KWOK_VERSION"; } | sha256sum | cut -c1-16)
root=${DKP_TEST_BINDIR:-${XDG_CACHE_HOME:-$HOME/.cache}/deckhouse-platform/k8s-bins}
out="$root/$key"

wanted=(etcd kube-apiserver kube-controller-manager kwok)
command -v kubectl >/dev/null 2>&1 || wanted+=(kubectl)

complete() {
  local b
  for b in "${wanted[@]}"; do [ -x "$out/$b" ] || return 1; done
  "$out/kube-apiserver" --version 2>/dev/null | grep -qx "Kubernetes $k8s_version"
}
if complete; then echo "$out"; exit 0; fi

minor=${k8s_version#v1.}; minor=${minor%%.*}
ldf="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldf+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldf+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

tmp="$out.tmp.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
cp -a "$out"/. "$tmp"/ 2>/dev/null || true
build() {  # name package
  [ -x "$tmp/$1" ] && return 0
  echo "building $1 ($2)" >&2
  local t0=$SECONDS
  (cd "$here/tools" && go build -trimpath -ldflags "$ldf" -o "$tmp/$1" "$2") >&2
  echo "built $1 in $((SECONDS - t0)) s" >&2
}
build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
if [ ! -x "$tmp/kwok" ]; then
  echo "building kwok $KWOK_VERSION" >&2
  t0=$SECONDS
  GOFLAGS='' GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
  echo "built kwok in $((SECONDS - t0)) s" >&2
fi
case " ${wanted[*]} " in *" kubectl "*) build kubectl k8s.io/kubernetes/cmd/kubectl ;; esac

rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "$out"
