#!/usr/bin/env bash
# azd postprovision hook: activate a tenant as soon as the new role assignments work.
#
# Runs `uploadsession subscription activate "$ACTIVATE_TENANT_ID"` against the provisioned storage,
# authenticated as whoever runs azd (a developer's login, or the CI service principal), which
# main.bicep granted Storage Table Data Contributor through principalId. Role assignments take a
# few minutes to reach the storage data plane, so the activation (a table write, safe to repeat)
# is retried with back-off until it succeeds or RBAC_WAIT_SECONDS have passed.
#
# Environment (azd passes the azd environment, deployment outputs included, to hooks):
#   ACTIVATE_TENANT_ID            tenant to activate; unset: nothing to do
#   AZURE_STORAGE_TABLE_ENDPOINT  \ outputs of main.bicep, handed to the CLI as
#   AZURE_STORAGE_BLOB_ENDPOINT   / UPLOADSESSION_STORAGE__tableServiceUri / __blobServiceUri
#   RBAC_WAIT_SECONDS             give up after this long (default 600)
#   RBAC_RETRY_FIRST_DELAY        first pause in seconds, doubled each time up to 60 (default 5)
set -euo pipefail

log() { printf 'postprovision: %s\n' "$*" >&2; }

tenant="${ACTIVATE_TENANT_ID:-}"
if [[ -z "$tenant" ]]; then
  log "ACTIVATE_TENANT_ID is not set, so no tenant was activated. To activate one:"
  log "  azd env set ACTIVATE_TENANT_ID <tenant-id> && azd hooks run postprovision"
  exit 0
fi
if [[ ! "$tenant" =~ ^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$ ]]; then
  log "ACTIVATE_TENANT_ID must be a tenant id (a GUID), got '$tenant'"
  exit 2
fi

export UPLOADSESSION_STORAGE__tableServiceUri="${AZURE_STORAGE_TABLE_ENDPOINT:?is not set: run azd provision first}"
export UPLOADSESSION_STORAGE__blobServiceUri="${AZURE_STORAGE_BLOB_ENDPOINT:?is not set: run azd provision first}"
# A connection string in the caller's shell (UseDevelopmentStorage=true for Azurite) would win over
# the service URIs, and the identity's client id is the function app's, not the caller's.
unset UPLOADSESSION_STORAGE UPLOADSESSION_STORAGE__clientId

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

find_cli() {
  if command -v uploadsession >/dev/null 2>&1; then
    command -v uploadsession
  elif [[ -x "$repo_root/.venv/bin/uploadsession" ]]; then
    printf '%s\n' "$repo_root/.venv/bin/uploadsession"
  else
    return 1
  fi
}

if ! cli="$(find_cli)"; then
  log "installing the uploadsession CLI into .venv"
  if [[ ! -x "$repo_root/.venv/bin/python" ]]; then
    python="$(command -v python3.11 || command -v python3)"
    "$python" -m venv "$repo_root/.venv"
  fi
  "$repo_root/.venv/bin/python" -m pip install --quiet --editable "$repo_root"
  cli="$repo_root/.venv/bin/uploadsession"
fi

wait_seconds="${RBAC_WAIT_SECONDS:-600}"
delay="${RBAC_RETRY_FIRST_DELAY:-5}"
deadline=$((SECONDS + wait_seconds))
attempt=1
until "$cli" subscription activate "$tenant"; do
  if ((SECONDS + delay >= deadline)); then
    log "activating $tenant still fails after ${wait_seconds}s; check that principalId got its roles"
    log "(azd env get-value AZURE_PRINCIPAL_ID) and run: azd hooks run postprovision"
    exit 1
  fi
  log "attempt $attempt failed; new role assignments can take minutes to apply, retrying in ${delay}s"
  sleep "$delay"
  attempt=$((attempt + 1))
  delay=$((delay * 2 > 60 ? 60 : delay * 2))
done
log "tenant $tenant is active"
