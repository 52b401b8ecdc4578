# azd postprovision hook for Windows: the same steps as postprovision.sh (read its header).
# Activates $env:ACTIVATE_TENANT_ID once the new role assignments work, retrying with back-off.
$ErrorActionPreference = 'Stop'

function Write-Step([string] $Message) { [Console]::Error.WriteLine("postprovision: $Message") }

$tenant = $env:ACTIVATE_TENANT_ID
if ([string]::IsNullOrEmpty($tenant)) {
    Write-Step 'ACTIVATE_TENANT_ID is not set, so no tenant was activated. To activate one:'
    Write-Step '  azd env set ACTIVATE_TENANT_ID <tenant-id>; azd hooks run postprovision'
    exit 0
}
if ($tenant -notmatch '^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$') {
    Write-Step "ACTIVATE_TENANT_ID must be a tenant id (a GUID), got '$tenant'"
    exit 2
}
if ([string]::IsNullOrEmpty($env:AZURE_STORAGE_TABLE_ENDPOINT) -or [string]::IsNullOrEmpty($env:AZURE_STORAGE_BLOB_ENDPOINT)) {
    Write-Step 'AZURE_STORAGE_TABLE_ENDPOINT or AZURE_STORAGE_BLOB_ENDPOINT is not set: run azd provision first'
    exit 2
}

$env:UPLOADSESSION_STORAGE__tableServiceUri = $env:AZURE_STORAGE_TABLE_ENDPOINT
$env:UPLOADSESSION_STORAGE__blobServiceUri = $env:AZURE_STORAGE_BLOB_ENDPOINT
# A local connection string would win over the service URIs; the identity's client id is the app's.
Remove-Item Env:UPLOADSESSION_STORAGE -ErrorAction SilentlyContinue
Remove-Item Env:UPLOADSESSION_STORAGE__clientId -ErrorAction SilentlyContinue

$repoRoot = (Resolve-Path (Join-Path $PSScriptRoot '..\..')).Path
$venvCli = Join-Path $repoRoot '.venv\Scripts\uploadsession.exe'
$onPath = Get-Command uploadsession -ErrorAction SilentlyContinue
if ($onPath) {
    $cli = $onPath.Source
} elseif (Test-Path $venvCli) {
    $cli = $venvCli
} else {
    Write-Step 'installing the uploadsession CLI into .venv'
    $venvPython = Join-Path $repoRoot '.venv\Scripts\python.exe'
    if (-not (Test-Path $venvPython)) {
        & py -3.11 -m venv (Join-Path $repoRoot '.venv')
        if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
    }
    & $venvPython -m pip install --quiet --editable $repoRoot
    if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
    $cli = $venvCli
}

$waitSeconds = if ($env:RBAC_WAIT_SECONDS) { [int] $env:RBAC_WAIT_SECONDS } else { 600 }
$delay = if ($env:RBAC_RETRY_FIRST_DELAY) { [int] $env:RBAC_RETRY_FIRST_DELAY } else { 5 }
$deadline = (Get-Date).AddSeconds($waitSeconds)
$attempt = 1
while ($true) {
    & $cli subscription activate $tenant
    if ($LASTEXITCODE -eq 0) { break }
    if ((Get-Date).AddSeconds($delay) -ge $deadline) {
        Write-Step "activating $tenant still fails after ${waitSeconds}s; check that principalId got its roles"
        Write-Step '(azd env get-value AZURE_PRINCIPAL_ID) and run: azd hooks run postprovision'
        exit 1
    }
    Write-Step "attempt $attempt failed; new role assignments can take minutes to apply, retrying in ${delay}s"
    Start-Sleep -Seconds $delay
    $attempt += 1
    $delay = [Math]::Min($delay * 2, 60)
}
Write-Step "tenant $tenant is active"
