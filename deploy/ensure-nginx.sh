#!/usr/bin/env bash
# Installs Debian's nginx for the deployment smoke test (tests/deploy) when it is missing.
# The test runs /usr/sbin/nginx in the foreground with a generated configuration; the
# package's own service is never started.
#
# Locally, without root (or password-less sudo), it only warns: the smoke test then skips.
# With CI=true (.ci/run) nginx must be there afterwards: any failure exits non-zero, so
# `make test` stops here instead of skipping the smoke test.
#
# NGINX_BIN and POLICY_RC_D exist for tests/deploy/test_ci.py, which runs this script
# against paths of its own; leave them unset.
set -euo pipefail
NGINX="${NGINX_BIN:-/usr/sbin/nginx}"
POLICY="${POLICY_RC_D:-/usr/sbin/policy-rc.d}"
[ -x "$NGINX" ] && exit 0

fail() {
  echo "ensure-nginx: ERROR: $*" >&2
  exit 1
}

if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
elif [ "${CI:-}" = "true" ]; then
  fail "$NGINX is missing and CI=true, but packages cannot be installed: run as root or" \
       "with password-less sudo (apt-get install -y nginx-light)."
else
  echo "ensure-nginx: $NGINX is missing and packages cannot be installed without root;" \
       "the deployment smoke test will be skipped (install it with: apt-get install -y nginx-light)." >&2
  exit 0
fi
echo "ensure-nginx: installing nginx-light with apt-get ..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || fail "apt-get update failed (see above)."
# policy-rc.d exit 101: the package's post-install must not start the system-wide service
# (there may be no init system, and port 80 may be taken); the test starts its own nginx.
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod +x "$POLICY"
  trap '$SUDO rm -f "$POLICY"' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends nginx-light >/dev/null \
  || fail "apt-get install nginx-light failed (see above)."
[ -x "$NGINX" ] || fail "apt-get installed nginx-light, but $NGINX is still missing."
"$NGINX" -v
