#!/usr/bin/env bash
# Counts the syscalls each kind of NumaRegion costs (create + drop), with strace, and
# fails if a base-page region needs more than mmap + mbind + one populate call + munmap.
# THP regions also trim the over-mapped head/tail to 2 MiB alignment and ask MADV_HUGEPAGE,
# exactly as the raw THP baseline does: at most 6. Prints every case's syscall list.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v strace >/dev/null; then
    apt-get install -y -qq --no-install-recommends strace >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends strace >/dev/null; } ||
        { echo "SKIPPED: syscall count (strace could not be installed)"; exit 0; }
fi
cargo build -q --release --example region_syscalls
out=$(mktemp)
trap 'rm -f "$out"' EXIT
strace -f -qq -s 256 -o "$out" target/release/examples/region_syscalls 2>/dev/null
awk '
    /NUMAPERF-MARK begin/ { match($0, /begin [^\\"]*/); name = substr($0, RSTART + 6, RLENGTH - 6); n = 0; list = ""; on = 1; next }
    /NUMAPERF-MARK end/ {
        limit = name ~ /THP/ ? 6 : name ~ /discover/ ? 1000 : 4
        printf "%-26s %2d  %s%s\n", name, n, list, (n > limit ? "   <- more than " limit : "")
        if (n > limit) bad = 1
        on = 0; next
    }
    on { sub(/^[0-9]+ +/, ""); call = $0; sub(/\(.*/, "", call); n++; list = list " " call }
    END {
        print bad ? "syscall count: FAILED" : "syscall count: every region within mmap + mbind + populate + munmap (THP: + trim + MADV_HUGEPAGE)"
        exit bad
    }
' "$out"
