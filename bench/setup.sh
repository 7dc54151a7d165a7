#!/usr/bin/env bash
# Installs the benchmark's peer, @tus/server + @tus/file-store, exactly as pinned in bench/node/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/node"
npm ci --no-audit --no-fund
