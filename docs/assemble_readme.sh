#!/usr/bin/env bash
# README.md is assembled from the section fragments in docs/readme/ (one per subsystem, in file-name order).
set -euo pipefail
cd "$(dirname "$0")/.."
{ for f in docs/readme/*.md; do cat "$f"; echo; done; } > README.md
