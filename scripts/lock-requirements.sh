#!/usr/bin/env bash
# Regenerate requirements.lock from requirements.txt: every runtime dependency, transitive ones
# included, pinned to one version with the sha256 of each of its files on PyPI, for Python 3.11 on
# any platform (the Flex Consumption remote build runs Linux x86-64). pip installs a file with
# hashes in --require-hashes mode, so a changed or substituted download fails the install.
#
# usage: scripts/lock-requirements.sh          (run after any edit of requirements.txt)
#
# The versions requirements.txt pins are kept as they are; the rest are the newest that fit.
# tests/infra/test_lock.py (make test) fails while the two files disagree. Needs uv, which
# requirements-dev.txt installs into .venv.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

uv="${UV:-}"
if [[ -z "$uv" ]]; then
  if [[ -x .venv/bin/uv ]]; then
    uv=.venv/bin/uv
  elif command -v uv >/dev/null 2>&1; then
    uv="$(command -v uv)"
  else
    echo "lock-requirements: uv not found; run make deps (requirements-dev.txt installs it)" >&2
    exit 1
  fi
fi

python_version="$(tr -d '[:space:]' <.python-version)"

"$uv" pip compile requirements.txt \
  --output-file requirements.lock \
  --generate-hashes \
  --universal \
  --python-version "$python_version" \
  --index-url https://pypi.org/simple \
  --no-emit-index-url \
  --custom-compile-command "scripts/lock-requirements.sh" \
  --quiet
echo "lock-requirements: wrote requirements.lock" >&2
