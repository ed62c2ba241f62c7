#!/usr/bin/env bash
# Puts a Pulumi CLI on PATH that matches @pulumi/pulumi in package.json.
#
#   scripts/pulumi-cli.sh            # prints the directory holding pulumi
#
# 1. A `pulumi` already on PATH at the same version is used as is.
# 2. Otherwise the CLI is built from Go modules (no prebuilt download is
#    needed): a throwaway wrapper module requires pkg/v3 and the Node.js
#    language host (pinned to the commit of the pkg/v<ver> tag) and runs
#    `go build` on both main packages (`go install mod@ver` refuses them: their
#    go.mod files carry replace lines, which a dependency's build ignores).
#    The result is cached outside the repository, keyed by version, in
#    ${FAME_PULUMI_CACHE:-/var/cache/fame/pulumi}/v<ver>/, so a machine that
#    built it once takes a second.
# 3. pulumi-resource-pulumi-nodejs (the dynamic-provider host) ships in the
#    npm package and is linked beside the binaries; `pulumi` is linked into
#    ${FAME_PULUMI_LINK_DIR:-/usr/local/bin} when that is writable.
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

# One build at a time per version (CI starts one early in the background).
mkdir -p "$cache"
exec 9>"$cache/.v$ver.lock"
flock 9
if [[ ! -x "$dir/pulumi" ]]; then
  command -v go >/dev/null || { log "Go is needed to build the Pulumi CLI v$ver (apt-get install golang-go, 1.25 or newer)"; exit 1; }
  export GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
  started=$(date +%s)
  work=$(mktemp -d "${TMPDIR:-/tmp}/fame-pulumi-build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  cd "$work"
  commit=$(go list -m -json "github.com/pulumi/pulumi/pkg/v3@v$ver" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.parse(s).Origin.Hash))')
  [[ -n "$commit" ]] || { log "the Go module proxy did not name the commit of pkg/v$ver"; exit 1; }
  log "building v$ver (commit ${commit:0:12}) from Go modules; the first build takes a while"
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
  ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$ver"
  mkdir -p "$work/bin"
  go build -trimpath -ldflags "$ldflags" -o "$work/bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi >&2
  rm -rf "$dir.tmp" && mv "$work/bin" "$dir.tmp" && rm -rf "$dir" && mv "$dir.tmp" "$dir"
  log "built in $(($(date +%s) - started)) s into $dir"
fi

# The Go module proxy these machines use refuses the official Node.js language
# host (github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3, at
# every version); fame's own host (scripts/language-host, same protocol, runs
# the program through the SDK's own cmd/run) stands in unless a real one is here.
if [[ ! -f "$dir/pulumi-language-nodejs" || -L "$dir/pulumi-language-nodejs" ]]; then
  ln -sfn "$here/scripts/language-host/pulumi-language-nodejs" "$dir/pulumi-language-nodejs"
fi
# The dynamic-provider host comes from the project's own @pulumi/pulumi.
shim="$here/node_modules/@pulumi/pulumi/cmd/dynamic-provider"
for f in pulumi-resource-pulumi-nodejs pulumi-analyzer-policy; do
  [[ -e "$here/node_modules/@pulumi/pulumi/$f" ]] && ln -sfn "$here/node_modules/@pulumi/pulumi/$f" "$dir/$f"
done
[[ -e "$dir/pulumi-resource-pulumi-nodejs" ]] || log "warning: npm ci first: $shim is missing"
"$dir/pulumi" version >/dev/null
link=${FAME_PULUMI_LINK_DIR:-/usr/local/bin}
if [[ -w "$link" ]]; then ln -sfn "$dir/pulumi" "$link/pulumi"; fi
echo "$dir"
