#!/usr/bin/env bash
# Counts the syscalls each kind of NumaRegion costs (create + drop), with strace, and
# fails if a base-page region needs more than mmap + mbind + one populate call + munmap.
# THP regions also trim the over-mapped head/tail to 2 MiB alignment and ask MADV_HUGEPAGE,
# exactly as the raw THP baseline does: at most 6; without prefault or with Touch: 3. Two allowances follow from this host's
# settings, as the library documents them: an interleaved base-page region gets one
# MADV_NOHUGEPAGE where THP (any size) is `always`, and a prefaulted region of at least
# 1/16 of node 0's memory reads the node's free memory first (openat, read, close).
# Discovery may make 6 calls (getpid and sched_getaffinity of the main thread,
# get_mempolicy for the allowed nodes, the root's open and close, one spare) plus 3 per
# file (online, and cpulist, meminfo, distance per node), plus the kernel's
# weighted-interleave table: 3 per node file and 4 for the auto-mode file (`auto` tried,
# then `__auto_type` on 6.18), and the memory tiers and attributes: the tiering directory
# (open, openat ".", two getdents64, close, and its own close: 6) plus 3 per tier's
# nodelist, and per node one probe of access0/initiators and one of access1 (2; a host
# whose firmware gives access figures reads them too: 3 per file there). A parallel populate (64 MiB and more, several CPUs) starts
# threads: that case is printed, not limited (std's thread start is most of it; the
# library adds getcpu, and per thread sched_setaffinity and MADV_POPULATE_WRITE; at drop,
# MADV_DONTNEED per releasing thread). Only the case's own thread is counted in the others.
# Prints every case's syscall list.
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
thp=/sys/kernel/mm/transparent_hugepage
thp_always=0
cat "$thp/enabled" "$thp"/hugepages-*/enabled 2>/dev/null | grep -q '\[always\]' && thp_always=1
meminfo=/sys/devices/system/node/node0/meminfo
[ -r "$meminfo" ] || meminfo=/proc/meminfo
node_kib=$(awk '/MemTotal:/ { print $(NF - 1) }' "$meminfo")
nodes=$(ls -d /sys/devices/system/node/node[0-9]* 2>/dev/null | wc -l)
tiers=$( (ls -d /sys/devices/virtual/memory_tiering/memory_tier[0-9]* 2>/dev/null || true) | wc -l)
attrs=$( (ls -d /sys/devices/system/node/node[0-9]*/access[01]/initiators/*_* 2>/dev/null || true) | wc -l)
echo "this host: THP always (some size): $thp_always; node 0: $node_kib KiB; nodes: $nodes; memory tiers: $tiers; access files: $attrs"
awk -v thp_always="$thp_always" -v node_kib="$node_kib" -v nodes="$nodes" -v tiers="$tiers" -v attrs="$attrs" '
    function bytes(name,    n, u) {
        n = name; sub(/[KMG].*/, "", n); u = substr(name, length(n) + 1, 1)
        return n * (u == "K" ? 1024 : u == "M" ? 1048576 : 1073741824)
    }
    /NUMAPERF-MARK begin/ { match($0, /begin [^\\"]*/); name = substr($0, RSTART + 6, RLENGTH - 6); n = 0; list = ""; on = 1; pid = $1; next }
    /NUMAPERF-MARK end/ {
        if (name ~ /parallel/) limit = 1000000
        else if (name ~ /discover/) { k = nodes > 0 ? nodes : 1; limit = 6 + 3 * (1 + 3 * k) + 3 * k + 4 + (tiers > 0 ? 6 + 3 * tiers : 1) + 2 * k + 3 * attrs }
        else {
            limit = name ~ /THP/ ? 6 : name ~ /none|touch/ ? 3 : 4
            if (name ~ /interleave/ && name !~ /THP/ && thp_always) limit += 1
            if (name !~ /none/ && bytes(name) * 16 >= node_kib * 1024) limit += 3
        }
        printf "%-26s %2d  %s%s\n", name, n, list, (n > limit ? "   <- more than " limit : "")
        if (n > limit) bad = 1
        on = 0; next
    }
    # The case'"'"'s own thread only (a parallel case counts all of its threads): an earlier
    # case'"'"'s helper threads may still be exiting when the next case begins.
    # A call interrupted by another thread'"'"'s output shows twice (`X(... <unfinished ...>`,
    # then `<... X resumed>`): it is counted at its start.
    on && $2 == "<..." { next }
    on && ($1 == pid || name ~ /parallel/) { sub(/^[0-9]+ +/, ""); call = $0; sub(/\(.*/, "", call); n++; list = list " " call }
    END {
        print bad ? "syscall count: FAILED" : "syscall count: every region within mmap + mbind + populate + munmap (THP: + trim + MADV_HUGEPAGE)"
        exit bad
    }
' "$out"
