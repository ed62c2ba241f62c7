#!/usr/bin/env bash
# From a fresh clone to a running cluster, in one command:
#
#   sudo scripts/quickstart.sh            # stack "dev": pulumi up
#   sudo scripts/quickstart.sh --preview  # only show what `up` would do
#
# Installs what is missing and nothing else: host packages (scripts/host-setup.sh),
# the project's npm packages, the Pulumi CLI (the official installer when
# get.pulumi.com is reachable, else built from Go modules by
# scripts/pulumi-cli.sh), a local state backend and passphrase when none is
# configured, and the stack. Then runs `pulumi up --yes` (extra arguments are
# passed on). Environment:
#   FAME_STACK     stack name (default dev; Pulumi.<stack>.yaml holds its config)
#   FAME_STATE     local backend directory (default /var/lib/fame/state), used
#                  when PULUMI_BACKEND_URL is unset and no login exists
#   FAME_*         the original configurator's variables: defaults for the
#                  stack keys that its config does not set
#   FAME_SKIP_HOST_SETUP=1  skip the host package check
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
[[ $(id -u) == 0 ]] || { echo "quickstart: run as root (sudo $0): fame manages libvirt domains and the FAM file" >&2; exit 1; }
log() { echo "quickstart: $*" >&2; }
stack=${FAME_STACK:-dev}
mode=up
if [[ ${1:-} == --preview ]]; then mode=preview; shift; fi

[[ ${FAME_SKIP_HOST_SETUP:-} == 1 ]] || scripts/host-setup.sh

if ! node -e 'require.resolve("@pulumi/pulumi"); require.resolve("ts-node")' 2>/dev/null; then
  log "installing npm packages"
  npm ci --no-audit --no-fund
fi

ver=$(node -p 'require("./package.json").dependencies["@pulumi/pulumi"]')
if [[ "$(pulumi version 2>/dev/null)" != "v$ver" && ${FAME_PULUMI_FROM:-} != go ]] &&
  curl -fsI --max-time 10 https://get.pulumi.com >/dev/null 2>&1; then
  log "installing the Pulumi CLI v$ver (official installer)"
  curl -fsSL https://get.pulumi.com | sh -s -- --version "$ver"
  export PATH="$HOME/.pulumi/bin:$PATH"
fi
# Uses a pulumi of this version already on PATH; otherwise builds (once) or
# checks fame's CLI cache, so a cache an older version of this script left
# with links into a deleted checkout is repaired rather than skipped.
cli=$(scripts/pulumi-cli.sh)
export PATH="$cli:$PATH"
export PULUMI_SKIP_UPDATE_CHECK=${PULUMI_SKIP_UPDATE_CHECK:-true}

if [[ -z ${PULUMI_BACKEND_URL:-} ]] && ! pulumi whoami >/dev/null 2>&1; then
  state=${FAME_STATE:-/var/lib/fame/state}
  mkdir -p "$state" && chmod 700 "$state"
  export PULUMI_BACKEND_URL="file://$state"
  log "state backend: $PULUMI_BACKEND_URL (pulumi login $PULUMI_BACKEND_URL to use it by hand)"
  pulumi login "$PULUMI_BACKEND_URL" >/dev/null
fi
if [[ -z ${PULUMI_CONFIG_PASSPHRASE:-} && -z ${PULUMI_CONFIG_PASSPHRASE_FILE:-} ]]; then
  # Secrets (the stack's SSH key) are encrypted with this passphrase; keep the file.
  pass=${FAME_STATE:-/var/lib/fame/state}/passphrase
  if [[ ! -s $pass ]]; then
    mkdir -p "$(dirname "$pass")"
    (umask 077 && openssl rand -base64 24 >"$pass")
    log "generated the stack passphrase in $pass (export PULUMI_CONFIG_PASSPHRASE_FILE=$pass)"
  fi
  export PULUMI_CONFIG_PASSPHRASE_FILE=$pass
fi

pulumi stack select --create "$stack" >/dev/null
log "stack $stack: pulumi $mode"
if [[ $mode == preview ]]; then
  exec pulumi preview "$@"
fi
exec pulumi up --yes "$@"
