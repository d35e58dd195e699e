#!/bin/sh
# Replays every fuzz corpus through its target (built without libFuzzer).
set -e
src=${top_srcdir:-.}
bld=${top_builddir:-.}
status=0
for target in h1_req chunked conf admin; do
    dir="$src/tests/fuzz/corpus/$target"
    set -- "$dir"/*
    [ -e "$1" ] || { echo "no corpus for $target"; status=1; continue; }
    printf '%s: ' "$target"
    "$bld/tests/fuzz/replay_$target" "$@" || status=1
done
exit $status
