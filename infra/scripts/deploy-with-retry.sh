#!/usr/bin/env bash
# `azd deploy` that outlasts a new app's role-assignment delay.
#
# Flex Consumption stores the deployment package with the app's managed identity. On the first
# deployment its Storage Blob Data Owner assignment may not have reached the storage data plane
# yet, and the deployment fails with 403. Failures that look like that are retried with back-off;
# any other failure ends the script at once.
#
# usage: deploy-with-retry.sh [azd deploy arguments]      (default: --no-prompt)
# env:   DEPLOY_ATTEMPTS (default 6), DEPLOY_RETRY_FIRST_DELAY (seconds, default 30, doubled up to 120)
set -euo pipefail

attempts="${DEPLOY_ATTEMPTS:-6}"
delay="${DEPLOY_RETRY_FIRST_DELAY:-30}"
authorization_failure='\b403\b|Forbidden|AuthorizationPermissionMismatch|AuthorizationFailure|not authorized to perform'

args=("$@")
if ((${#args[@]} == 0)); then
  args=(--no-prompt)
fi

output="$(mktemp)"
trap 'rm -f "$output"' EXIT

for ((attempt = 1; ; attempt++)); do
  if azd deploy "${args[@]}" 2>&1 | tee "$output"; then
    exit 0
  fi
  if ! grep -qiE "$authorization_failure" "$output"; then
    echo "deploy-with-retry: azd deploy failed for a reason other than authorization; not retrying" >&2
    exit 1
  fi
  if ((attempt >= attempts)); then
    echo "deploy-with-retry: still refused (403) after $attempts attempts" >&2
    exit 1
  fi
  echo "deploy-with-retry: attempt $attempt refused (403): role assignments still propagating; retrying in ${delay}s" >&2
  sleep "$delay"
  delay=$((delay * 2 > 120 ? 120 : delay * 2))
done
