#!/usr/bin/env bash
# Installs Debian's nginx for the deployment smoke test (tests/deploy) when it is missing.
# The test runs /usr/sbin/nginx in the foreground with a generated configuration; the
# package's own service is never started.
set -euo pipefail
NGINX=/usr/sbin/nginx
[ -x "$NGINX" ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "ensure-nginx: $NGINX is missing and packages cannot be installed without root;" \
       "the deployment smoke test will be skipped (install it with: apt-get install -y nginx-light)." >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d exit 101: the package's post-install must not start the system-wide service
# (there may be no init system, and port 80 may be taken); the test starts its own nginx.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod +x "$POLICY"
  trap '$SUDO rm -f "$POLICY"' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends nginx-light >/dev/null
"$NGINX" -v
