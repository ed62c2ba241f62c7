#!/usr/bin/env bash
# Puts a Pulumi CLI on PATH that matches @pulumi/pulumi in package.json.
#
#   scripts/pulumi-cli.sh            # prints the directory holding pulumi
#
# 1. A `pulumi` already on PATH at the same version is used as is.
# 2. Otherwise the CLI is built from Go modules (no prebuilt download is
#    needed): a throwaway wrapper module requires pkg/v3 and sdk/v3 at that
#    version and runs `go build` on pkg/v3/cmd/pulumi (`go install mod@ver`
#    refuses it: its go.mod carries replace lines). Only the module versions
#    are asked of the proxy: nothing optional in its answers (an `Origin`,
#    say) is needed.
# 3. The official Node.js language host is built from its source when that is
#    here: $FAME_PULUMI_LANGUAGE_NODEJS_SRC, or ../shared/vendor/pulumi-language-nodejs
#    beside the checkout (the proxy refuses that module). Without it, fame's
#    own host (scripts/language-host, the same protocol) stands in.
# 4. The dynamic-provider host shim of @pulumi/pulumi is copied beside them: it
#    finds @pulumi/pulumi from the program's directory, so it works for every
#    checkout.
# Everything is cached outside the repository as real files, keyed by version,
# in ${FAME_PULUMI_CACHE:-/var/cache/fame/pulumi}/v<ver>/: deleting any checkout
# leaves the CLI working for every other. `language-host` there says which host
# it holds. `pulumi` is linked into ${FAME_PULUMI_LINK_DIR:-/usr/local/bin} when
# that is writable.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ver=$(node -p 'require(process.argv[1]).dependencies["@pulumi/pulumi"]' "$here/package.json")
cache=${FAME_PULUMI_CACHE:-/var/cache/fame/pulumi}
dir="$cache/v$ver"
log() { echo "pulumi-cli: $*" >&2; }

if command -v pulumi >/dev/null 2>&1 && [[ "$(pulumi version 2>/dev/null)" == "v$ver" ]] &&
  [[ "$(readlink -f "$(command -v pulumi)")" != "$dir/pulumi" ]]; then
  log "using $(command -v pulumi) (v$ver)"
  dirname "$(command -v pulumi)"
  exit 0
fi

langsrc=${FAME_PULUMI_LANGUAGE_NODEJS_SRC:-$here/../shared/vendor/pulumi-language-nodejs}
if [[ -f $langsrc/main.go && -f $langsrc/go.mod ]]; then
  langsrc=$(cd "$langsrc" && pwd)
elif [[ -n ${FAME_PULUMI_LANGUAGE_NODEJS_SRC:-} ]]; then
  log "FAME_PULUMI_LANGUAGE_NODEJS_SRC=$FAME_PULUMI_LANGUAGE_NODEJS_SRC holds no main.go and go.mod"
  exit 1
else
  langsrc=""
fi

need_go() {
  command -v go >/dev/null || { log "Go is needed to build the Pulumi CLI v$ver (apt-get install golang-go, 1.25 or newer)"; exit 1; }
  export GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
}
work=""
cleanup() { [[ -z $work ]] || rm -rf "$work"; }
trap cleanup EXIT
scratch() {
  [[ -n $work ]] || work=$(mktemp -d "${TMPDIR:-/tmp}/fame-pulumi-build.XXXXXX")
}
ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$ver"

# One build at a time per version (CI starts one early in the background).
mkdir -p "$cache"
exec 9>"$cache/.v$ver.lock"
flock 9
mkdir -p "$dir"
if [[ ! -x "$dir/pulumi" ]]; then
  need_go
  started=$(date +%s)
  scratch
  mkdir -p "$work/cli" && cd "$work/cli"
  log "building v$ver from Go modules; the first build takes a while"
  go mod init fame.local/pulumi-cli >/dev/null 2>&1
  cat >tools.go <<GO
//go:build tools

package tools

import (
	_ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
)
GO
  go get "github.com/pulumi/pulumi/pkg/v3@v$ver" "github.com/pulumi/pulumi/sdk/v3@v$ver" >&2
  go mod tidy >&2
  go build -trimpath -ldflags "$ldflags" -o "$work/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi >&2
  mv -f "$work/pulumi" "$dir/pulumi"
  log "built the CLI in $(($(date +%s) - started)) s into $dir"
  cd "$here"
fi

# The language host: the official one when its source is here (replacing a
# fallback an earlier run put in), else fame's own. Real files, never links.
kind=$(cat "$dir/language-host" 2>/dev/null || true)
if [[ -n $langsrc && $kind != official* ]]; then
  need_go
  started=$(date +%s)
  scratch
  # In a copy: the source may be read-only, and -mod=mod may update go.sum.
  rm -rf "$work/langhost" && cp -r "$langsrc" "$work/langhost"
  (cd "$work/langhost" && go build -trimpath -ldflags "$ldflags" -o "$work/pulumi-language-nodejs" .) >&2
  rm -f "$dir/pulumi-language-nodejs"
  mv -f "$work/pulumi-language-nodejs" "$dir/pulumi-language-nodejs"
  echo "official pulumi-language-nodejs v$ver, built from $langsrc" >"$dir/language-host"
  log "built the official Node.js language host in $(($(date +%s) - started)) s"
elif [[ -z $langsrc && ( $kind != official* || ! -x $dir/pulumi-language-nodejs ) ]]; then
  rm -f "$dir/pulumi-language-nodejs"
  cp "$here/scripts/language-host/pulumi-language-nodejs" "$dir/pulumi-language-nodejs.tmp"
  chmod 755 "$dir/pulumi-language-nodejs.tmp"
  mv -f "$dir/pulumi-language-nodejs.tmp" "$dir/pulumi-language-nodejs"
  echo "fallback: fame's scripts/language-host (no official source: set FAME_PULUMI_LANGUAGE_NODEJS_SRC)" >"$dir/language-host"
  log "no source of the official Node.js language host: using fame's fallback host"
fi

# The dynamic-provider and policy hosts: @pulumi/pulumi's own shims, which
# resolve @pulumi/pulumi from the program's directory at run time.
for f in pulumi-resource-pulumi-nodejs pulumi-analyzer-policy; do
  src="$here/node_modules/@pulumi/pulumi/$f"
  if [[ -f $src ]]; then
    if [[ -L $dir/$f ]] || ! cmp -s "$src" "$dir/$f"; then
      rm -f "$dir/$f"
      cp "$src" "$dir/$f.tmp" && chmod 755 "$dir/$f.tmp" && mv -f "$dir/$f.tmp" "$dir/$f"
    fi
  elif [[ -L $dir/$f && ! -e $dir/$f ]]; then
    rm -f "$dir/$f" # an earlier version's link into a checkout that is gone
  fi
done
[[ -f "$dir/pulumi-resource-pulumi-nodejs" ]] || log "warning: run npm ci first: @pulumi/pulumi's pulumi-resource-pulumi-nodejs is missing"
"$dir/pulumi" version >/dev/null
log "language host: $(cat "$dir/language-host")"
link=${FAME_PULUMI_LINK_DIR:-/usr/local/bin}
if [[ -w "$link" ]]; then ln -sfn "$dir/pulumi" "$link/pulumi"; fi
echo "$dir"
