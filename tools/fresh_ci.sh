#!/usr/bin/env bash
# Run the project's CI (.ci/run) on a fresh clone of a commit, as the CI machine does, then remove
# the clone: each clone holds a ~7 GB virtual environment, and clones left behind on a shared disk
# are what made a CI run fail with "No space left on device" (notes/experiments.md, 2026-11-27).
# usage: tools/fresh_ci.sh [COMMIT]   (default HEAD); prints the CI's output, the wall time, and
# exits with the CI's exit status.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
commit="${1:-HEAD}"
clone="$(mktemp -d "${TMPDIR:-/tmp}/occkit-ci.XXXXXX")"
trap 'rm -rf "$clone"' EXIT
git clone -q "$repo" "$clone" && git -C "$clone" checkout -q "$(git -C "$repo" rev-parse "$commit")" || exit 1
echo "fresh clone of $(git -C "$clone" rev-parse --short HEAD) in $clone"
start=$(date +%s)
(cd "$clone" && bash .ci/run)
rc=$?
echo "CI exit status $rc after $(( $(date +%s) - start )) s; removing $clone"
exit "$rc"
