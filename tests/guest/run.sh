#!/usr/bin/env bash
# Boots real multi-node Linux kernels under QEMU (TCG) with the behaviour suite as PID 1's
# payload, and turns the guest's markers into pass/fail. Never judged by QEMU's exit code.
#
#   tests/guest/run.sh [--kernel 6.1|6.12|all] [--topology 2node|4node-cxl|all]
#                      [--balancing on|off] [--timeout SECONDS] [--sysfs-out DIR]
#
# Installs qemu-system-x86, busybox-static and cpio when missing, fetches Debian's cloud
# kernels (6.1 from bookworm, 6.12 from bookworm-backports through a private sources list)
# into $GUEST_CACHE (default .guest-cache/), builds examples/guest_suite.rs statically, and
# prints a table: scenario x topology x kernel x result. Exit 0 only if every run passed.
# QEMU is bookworm-backports' (extracted into the cache; see fetch_qemu). Knobs for
# experiments: GUEST_QEMU / GUEST_QEMU_ARGS (another binary), GUEST_QEMU_CPU (default max),
# GUEST_QEMU_ACCEL (default tcg), GUEST_APPEND (extra kernel arguments), GUEST_LOGS (keep logs).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${GUEST_CACHE:-$repo/.guest-cache}
kernels=all topologies=all balancing=off timeout_s=240 sysfs_out=""
qemu_accel=${GUEST_QEMU_ACCEL:-tcg} qemu_cpu=${GUEST_QEMU_CPU:-max}
while [ $# -gt 0 ]; do
    case $1 in
        --kernel) kernels=$2; shift 2 ;;
        --topology) topologies=$2; shift 2 ;;
        --balancing) balancing=$2; shift 2 ;;
        --timeout) timeout_s=$2; shift 2 ;;
        --sysfs-out) sysfs_out=$2; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[ "$kernels" = all ] && kernels="6.1 6.12"
[ "$topologies" = all ] && topologies="2node 4node-cxl"
mkdir -p "$cache"
# Kernels are shared through the cache; everything else belongs to this run.
work=$(mktemp -d "$cache/run.XXXXXX")
trap 'rm -rf "$work"' EXIT
export DEBIAN_FRONTEND=noninteractive

log() { printf '[guest] %s\n' "$*" >&2; }

install_packages() {
    local missing=()
    command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
    [ -x /bin/busybox ] || missing+=(busybox-static)
    command -v cpio >/dev/null || missing+=(cpio)
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
}

# apt options for the private bookworm-backports lists (the system's sources stay untouched).
bpo_opts() {
    echo "-o Dir::Etc::SourceList=$cache/bpo/sources.list -o Dir::Etc::SourceParts=/dev/null" \
         "-o Dir::State::Lists=$cache/bpo/lists -o Dir::Cache=$cache/bpo/cache"
}

# The versioned image package the cloud meta package depends on (the ABI number changes).
resolve_image() {
    # shellcheck disable=SC2086
    apt-cache $1 depends linux-image-cloud-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\).*/\1/p' | grep -v unsigned | head -1
}

# Fetches the bookworm-backports package lists into the cache (once per run).
bpo_update() {
    [ -e "$work/bpo-updated" ] && return 0
    mkdir -p "$cache/bpo/lists/partial" "$cache/bpo/cache/archives/partial"
    echo "deb http://deb.debian.org/debian bookworm-backports main" > "$cache/bpo/sources.list"
    # shellcheck disable=SC2046
    apt-get $(bpo_opts) update -qq >/dev/null && touch "$work/bpo-updated"
}

fetch_kernel() { # $1 = 6.1 | 6.12; prints the vmlinuz path
    local want=$1 out="$cache/vmlinuz-$1" opts="" pkg dir
    if [ -s "$out" ]; then echo "$out"; return; fi
    if [ "$want" = 6.12 ]; then
        bpo_update || return 1
        opts=$(bpo_opts)
    fi
    pkg=$(resolve_image "$opts")
    if [ -z "$pkg" ] && [ -z "$opts" ]; then
        apt-get update -qq >/dev/null; pkg=$(resolve_image "")
    fi
    [ -n "$pkg" ] || { log "cannot resolve linux-image-cloud-amd64 for $want"; return 1; }
    case $pkg in *"-$want."*|*"-$want-"*) ;; *) log "resolved $pkg, not a $want kernel"; return 1 ;; esac
    log "downloading $pkg"
    dir=$(mktemp -d)
    # shellcheck disable=SC2086
    (cd "$dir" && apt-get $opts -o APT::Sandbox::User=root download "$pkg" >/dev/null && dpkg -x ./*.deb x)
    cp "$dir"/x/boot/vmlinuz-* "$out"
    rm -rf "$dir"
    echo "$out"
}

# QEMU 7.2 (bookworm) TCG crashes 6.12 guests in about half the boots on some hosts
# (AMD EPYC here: GP faults in iretq, double faults with garbage EFLAGS, before or after
# init); QEMU 10 from bookworm-backports booted the same guests 8 of 8 times. So the runner
# extracts backports' QEMU into the cache (nothing installed) and uses it; its libraries
# are the ones bookworm's qemu-system-x86 already pulled in. Prints "binary|-L args".
fetch_qemu() {
    local dir="$cache/qemu-bpo" tmp
    local bin="$dir/usr/bin/qemu-system-x86_64" args="-L $dir/usr/share/seabios -L $dir/usr/share/qemu"
    if ! [ -x "$bin" ] || ! "$bin" --version >/dev/null 2>&1; then
        bpo_update || return 1
        tmp=$(mktemp -d)
        # shellcheck disable=SC2046
        (cd "$tmp" && apt-get $(bpo_opts) -o APT::Sandbox::User=root download \
            qemu-system-x86 qemu-system-common qemu-system-data seabios >/dev/null &&
            rm -rf "$dir" && for d in ./*.deb; do dpkg -x "$d" "$dir"; done) || { rm -rf "$tmp"; return 1; }
        rm -rf "$tmp"
        "$bin" --version >/dev/null 2>&1 || return 1
    fi
    echo "$bin|$args"
}

build_payload() {
    log "building the static payload"
    (cd "$repo" && RUSTFLAGS='-C target-feature=+crt-static' \
        cargo build -q --release --example guest_suite --target x86_64-unknown-linux-gnu)
    echo "$repo/target/x86_64-unknown-linux-gnu/release/examples/guest_suite"
}

build_initramfs() { # $1 = payload, $2 = payload argument; prints the image path
    local root img="$work/initramfs-$2.cpio.gz"
    root=$(mktemp -d)
    mkdir -p "$root"/{bin,proc,sys,dev,tmp}
    cp /bin/busybox "$root/bin/busybox"
    for t in sh mount poweroff sleep; do ln -s busybox "$root/bin/$t"; done
    cp "$1" "$root/payload"
    cat > "$root/init" <<EOF
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo NUMAPERF-BOOTED
# A few 2 MiB huge pages on node 0 only: the hugetlb case needs a node with some and one
# without (a region bound there must be a typed error, not a SIGBUS at first touch).
echo 4 > /sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages 2>/dev/null
/payload $2
echo NUMAPERF-PAYLOAD-EXIT \$?
poweroff -f
EOF
    chmod +x "$root/init"
    (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 > "$img")
    rm -rf "$root"
    echo "$img"
}

qemu_topology() { # $1 = topology name; prints QEMU arguments
    case $1 in
        2node)
            echo "-smp 2 -m 1G" \
                 "-object memory-backend-ram,id=m0,size=512M -numa node,nodeid=0,cpus=0,memdev=m0" \
                 "-object memory-backend-ram,id=m1,size=512M -numa node,nodeid=1,cpus=1,memdev=m1" \
                 "-numa dist,src=0,dst=1,val=21" ;;
        4node-cxl)
            local a="-smp 2 -m 1G" n
            for n in 0 1 2 3; do
                a="$a -object memory-backend-ram,id=m$n,size=256M -numa node,nodeid=$n,memdev=m$n"
                [ $n -lt 2 ] && a="$a,cpus=$n"
            done
            echo "$a -numa dist,src=0,dst=1,val=21 -numa dist,src=0,dst=2,val=31" \
                 "-numa dist,src=0,dst=3,val=31 -numa dist,src=1,dst=2,val=31" \
                 "-numa dist,src=1,dst=3,val=31 -numa dist,src=2,dst=3,val=41" ;;
        *) log "unknown topology $1"; return 1 ;;
    esac
}

boot() { # $1 kernel image, $2 initramfs, $3 topology, $4 log file
    local append="console=ttyS0 quiet panic=-1 numa_balancing=disable"
    [ "$balancing" = on ] && append="console=ttyS0 quiet panic=-1 numa_balancing=enable"
    append="$append ${GUEST_APPEND:-}"
    # shellcheck disable=SC2046
    timeout -k 5 "$timeout_s" "$qemu_bin" $qemu_args -accel "$qemu_accel" -cpu "$qemu_cpu" -nographic -no-reboot -nic none \
        $(qemu_topology "$3") -kernel "$1" -initrd "$2" -append "$append" > "$4" 2>&1 || true
}

save_sysfs() { # $1 log, $2 directory
    mkdir -p "$2"
    tr -d '\r' < "$1" | sed -n 's/^.*NUMAPERF-SYSFS \([^ ]*\) \([0-9a-f]*\)$/\1 \2/p' |
        while read -r path hex; do
            mkdir -p "$2/$(dirname "$path")"
            # shellcheck disable=SC2059
            printf "$(sed 's/../\\x&/g' <<< "$hex")" > "$2/$path"
        done
}

if ! install_packages; then
    echo "SKIPPED: all guest runs (apt could not install qemu-system-x86, busybox-static, cpio)"
    exit 0
fi
if [ -n "${GUEST_QEMU:-}" ]; then
    qemu_bin=$GUEST_QEMU qemu_args=${GUEST_QEMU_ARGS:-}
elif q=$(fetch_qemu); then
    qemu_bin=${q%%|*} qemu_args=${q#*|}
else
    qemu_bin=qemu-system-x86_64 qemu_args=""
    echo "WARNING: backports QEMU unavailable; using $(qemu-system-x86_64 --version | head -1)," \
         "whose TCG crashes some 6.12 boots on this host class (boot crashes are retried)"
fi
log "$("$qemu_bin" --version | head -1)"
payload=$(build_payload)
mode=full
[ "$balancing" = on ] && mode=soft
initrd=$(build_initramfs "$payload" "$mode")
status=0 table=""
for k in $kernels; do
    if ! vmlinuz=$(fetch_kernel "$k"); then
        echo "SKIPPED: Linux $k guests (the kernel package could not be downloaded)"
        continue
    fi
    for topo in $topologies; do
        logf="${GUEST_LOGS:-$work}/guest-$k-$topo-$mode.log"
        start=$(date +%s)
        for attempt in 1 2 3; do
            boot "$vmlinuz" "$initrd" "$topo" "$logf"
            # Only a kernel that died before running init is booted again: the payload never
            # ran, so nothing of ours was judged. Anything after NUMAPERF-BOOTED counts.
            grep -aq NUMAPERF-BOOTED "$logf" && break
            log "$topo / $k: the kernel died before init ran (attempt $attempt of 3):"
            tr -d '\r' < "$logf" | grep -a -m3 -E 'panic|Oops|fault' >&2 || true
        done
        secs=$(( $(date +%s) - start ))
        [ -n "$sysfs_out" ] && save_sysfs "$logf" "$sysfs_out/$topo-$k"
        clean=$(tr -d '\r' < "$logf")
        while read -r name result _; do
            table+="$(printf '%-56s %-10s %-5s %s' "$name" "$topo" "$k" "$result")"$'\n'
        done < <(sed -n 's/^.*NUMAPERF-CASE //p' <<< "$clean")
        # NUMAPERF-DONE <passed> <failed> [<skipped>]
        done_line=$(sed -n 's/^.*NUMAPERF-DONE \([0-9]*\) \([0-9]*\) *\([0-9]*\).*/\1 \2 \3/p' <<< "$clean" | tail -1)
        exit_code=$(sed -n 's/^.*NUMAPERF-PAYLOAD-EXIT \([0-9]*\).*/\1/p' <<< "$clean" | tail -1)
        read -r n_pass n_fail n_skip <<< "$done_line"
        if [ -z "$done_line" ]; then
            log "$topo / $k: no NUMAPERF-DONE marker after ${secs}s (timeout, crash or panic); log: $logf"
            tail -5 "$logf" >&2 || true
            status=1
        elif [ "$n_fail" != 0 ] || [ "${exit_code:-1}" != 0 ]; then
            log "$topo / $k: failed cases:"; grep -a ' FAIL ' <<< "$clean" | sed 's/^.*NUMAPERF-CASE /  /' >&2
            status=1
        else
            log "$topo / $k: $n_pass passed, ${n_skip:-0} skipped in ${secs}s"
        fi
        grep -a ' SKIP ' <<< "$clean" | sed 's/^.*NUMAPERF-CASE /  skipped: /' >&2 || true
    done
done
printf '\n%-56s %-10s %-5s %s\n' scenario topology linux result
printf '%s' "$table"
[ $status = 0 ] && echo "guest runs: all passed" || echo "guest runs: FAILED"
exit $status
