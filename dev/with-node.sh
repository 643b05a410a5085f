#!/usr/bin/env bash
# Runs a command with Node >= 22 first on PATH: the npm scripts go through this, so they work on a
# machine whose Node is older (Node 24 is then installed once into the cache; see use-node.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/use-node.sh"
exec "$@"
