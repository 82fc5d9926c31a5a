#!/usr/bin/env bash
# Boots real multi-node Linux kernels under QEMU (TCG) with the behaviour suite as PID 1's
# payload, and turns the guest's markers into pass/fail. Never judged by QEMU's exit code.
#
#   tests/guest/run.sh [--arch x86_64|aarch64|ppc64le|riscv64|all] [--kernel 6.1|6.12|all]
#                      [--topology 2node|4node-cxl|all] [--balancing on|off]
#                      [--timeout SECONDS] [--sysfs-out DIR]
#
# --arch takes one name, "all", or a comma/space separated list. The default is every
# architecture, "x86_64 aarch64 ppc64le riscv64": their guests boot and pass within CI time.
# riscv64 runs 6.12 x 2node only (Debian has riscv64 from trixie on, and QEMU's riscv virt
# board refuses NUMA nodes without CPUs). ppc64le boots pseries guests (console hvc0);
# bookworm's 6.1 ppc64el kernel has 64 KiB base pages (bookworm-backports' 6.12 has 4 KiB),
# and the suite counts pages in the kernel's own base page. Installs qemu-system-x86,
# busybox-static and cpio when missing, and for ppc64le and riscv64 the cross gcc and
# static glibc that link their payload (gcc-<triple>, libc6-dev-<arch>-cross: rustup has
# no musl standard library for them); a toolchain that cannot be had fails the run. Fetches
# Debian's kernels (6.1 from bookworm, 6.12 from bookworm-backports, riscv64's from trixie),
# busybox-static for foreign architectures and backports' QEMU through private package
# lists in $GUEST_CACHE (default .guest-cache/; the system's apt configuration is not
# touched), builds examples/guest_suite.rs statically for each architecture, and prints a
# table: scenario x arch x topology x kernel x result, then one line per boot. Exit 0 only
# if every run passed. The Debian mirror is the one the system's own apt sources name (or
# GUEST_DEBIAN_MIRROR).
# Knobs for experiments: GUEST_QEMU / GUEST_QEMU_ARGS (another binary; only with one --arch),
# GUEST_QEMU_CPU (default max; the QEMU default on ppc64le), GUEST_QEMU_ACCEL (default tcg),
# GUEST_APPEND (extra kernel arguments), GUEST_LOGS (keep logs in that directory).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${GUEST_CACHE:-$repo/.guest-cache}
arches="x86_64 aarch64 ppc64le riscv64" kernels=all topologies=all balancing=off timeout_s=240 sysfs_out=""
qemu_accel=${GUEST_QEMU_ACCEL:-tcg}
while [ $# -gt 0 ]; do
    case $1 in
        --arch) arches=${2//,/ }; shift 2 ;;
        --kernel) kernels=$2; shift 2 ;;
        --topology) topologies=$2; shift 2 ;;
        --balancing) balancing=$2; shift 2 ;;
        --timeout) timeout_s=$2; shift 2 ;;
        --sysfs-out) sysfs_out=$2; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[ "$arches" = all ] && arches="x86_64 aarch64 ppc64le riscv64"
[ "$kernels" = all ] && kernels="6.1 6.12"
[ "$topologies" = all ] && topologies="2node 4node-cxl"
for a in $arches; do
    case $a in x86_64|aarch64|ppc64le|riscv64) ;; *) echo "unknown architecture: $a" >&2; exit 2 ;; esac
done
mkdir -p "$cache"
# Kernels, QEMU and package lists are shared through the cache; the rest belongs to this run.
work=$(mktemp -d "$cache/run.XXXXXX")
trap 'rm -rf "$work"' EXIT
export DEBIAN_FRONTEND=noninteractive

log() { printf '[guest] %s\n' "$*" >&2; }

# apt-get install from the system's sources, waiting for another apt's lock, updating the
# lists once if the first try fails; apt's own errors are shown when both fail.
apt_install() { # packages...
    local opts="-y -qq --no-install-recommends -o DPkg::Lock::Timeout=300"
    # shellcheck disable=SC2086
    apt-get install $opts "$@" >/dev/null 2>&1 && return 0
    # shellcheck disable=SC2086
    apt-get update -qq -o DPkg::Lock::Timeout=300 >/dev/null && apt-get install $opts "$@" >/dev/null
}

install_packages() {
    local missing=()
    command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
    [ -x /bin/busybox ] || missing+=(busybox-static)
    command -v cpio >/dev/null || missing+=(cpio)
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    apt_install "${missing[@]}"
}

# The Debian mirror the system's apt already uses (so this works behind a mirror too): the
# first URIs: of a deb822 stanza listing bookworm (else of any non-security stanza), else the
# first such `deb` line of sources.list. The security suite's own URI is never taken.
debian_mirror() {
    local m="${GUEST_DEBIAN_MIRROR:-}" f
    if [ -z "$m" ]; then
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -r "$f" ] || continue
            m=$(awk 'BEGIN { RS = ""; FS = "\n" }
                {
                    uri = ""; suites = ""; deb = 0; off = 0
                    for (i = 1; i <= NF; i++) {
                        l = $i
                        if (l ~ /^[ \t]*#/) continue
                        if (l ~ /^Types:/ && l ~ /[ \t]deb([ \t]|$)/) deb = 1
                        if (l ~ /^Enabled:[ \t]*(no|false)/) off = 1
                        if (l ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", l); split(l, u, /[ \t]+/); uri = u[1] }
                        if (l ~ /^Suites:/) { sub(/^Suites:/, "", l); suites = " " l " " }
                    }
                    if (!deb || off || uri == "" || suites ~ /-security[ \t]/) next
                    if (suites ~ /[ \t]bookworm[ \t]/) { print uri; found = 1; exit }
                    if (any == "") any = uri
                }
                END { if (!found && any != "") print any }' "$f")
            [ -n "$m" ] && break
        done
    fi
    if [ -z "$m" ] && [ -r /etc/apt/sources.list ]; then
        m=$(awk '{ sub(/#.*/, "") } $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                uri = $i; suite = $(i + 1)
                if (suite ~ /-security$/) next
                if (suite == "bookworm") { print uri; found = 1; exit }
                if (any == "") any = uri
            }
            END { if (!found && any != "") print any }' /etc/apt/sources.list)
    fi
    [ -n "$m" ] || return 1
    echo "${m%/}"
}

# Private package lists, one directory per Debian architecture and suite: the system's apt
# configuration, architectures and status file stay untouched.
apt_opts() { # $1 Debian architecture, $2 suite
    local d="$cache/apt/$1-$2"
    echo "-o Dir::Etc::SourceList=$d/sources.list -o Dir::Etc::SourceParts=/dev/null" \
         "-o Dir::State::Lists=$d/lists -o Dir::Cache=$d/cache -o Dir::State::status=/dev/null" \
         "-o APT::Architecture=$1 -o APT::Architectures::=$1 -o APT::Sandbox::User=root"
}

apt_update() { # $1 Debian architecture, $2 suite (once per run)
    local d="$cache/apt/$1-$2" keyring=""
    [ -e "$work/updated-$1-$2" ] && return 0
    if [ -z "$mirror" ]; then
        log "no Debian mirror: neither /etc/apt/sources.list.d/*.sources (URIs:) nor" \
            "/etc/apt/sources.list (deb lines) names one; set GUEST_DEBIAN_MIRROR"
        touch "$work/no-mirror"
        return 1
    fi
    [ -r /usr/share/keyrings/debian-archive-keyring.gpg ] &&
        keyring=" signed-by=/usr/share/keyrings/debian-archive-keyring.gpg"
    mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
    echo "deb [arch=$1$keyring] $mirror $2 main" > "$d/sources.list"
    # shellcheck disable=SC2046
    apt-get $(apt_opts "$1" "$2") update -qq >/dev/null && touch "$work/updated-$1-$2"
}

apt_download() { # $1 Debian architecture, $2 suite, $3 directory, packages...
    local a=$1 s=$2 d=$3
    shift 3
    apt_update "$a" "$s" || return 1
    # shellcheck disable=SC2046
    (cd "$d" && apt-get $(apt_opts "$a" "$s") download "$@" >/dev/null)
}

# Per-architecture settings: Debian architecture, kernel meta package and suites, QEMU
# package and binary, machine arguments, console, Rust target and the cross gcc linking it.
arch_setup() { # $1 = arch
    arch=$1 machine="" bios="" qemu_cpu=${GUEST_QEMU_CPU:-max} acache="$cache/$1" cross=""
    suite_61=bookworm suite_612=bookworm-backports suite_bb=bookworm busybox=""
    case $1 in
        x86_64)
            deb_arch=amd64 kmeta=linux-image-cloud-amd64 console=ttyS0
            qemu_pkg=qemu-system-x86 qemu_name=qemu-system-x86_64 qdir="$cache/qemu-bpo"
            rust_target=x86_64-unknown-linux-gnu acache="$cache"
            [ -x /bin/busybox ] && busybox=/bin/busybox ;;
        aarch64)
            # Debian's arm64 vmlinuz is an uncompressed Image; NUMA and PL011 are built in.
            deb_arch=arm64 kmeta=linux-image-cloud-arm64 console=ttyAMA0 machine="-M virt"
            qemu_pkg=qemu-system-arm qemu_name=qemu-system-aarch64 qdir="$cache/qemu-bpo-arm"
            rust_target=aarch64-unknown-linux-musl ;;
        ppc64le)
            deb_arch=ppc64el kmeta=linux-image-powerpc64le console=hvc0 machine="-M pseries"
            qemu_pkg=qemu-system-ppc qemu_name=qemu-system-ppc64 qdir="$cache/qemu-bpo-ppc"
            qemu_cpu=${GUEST_QEMU_CPU:-}
            rust_target=powerpc64le-unknown-linux-gnu cross=powerpc64le-linux-gnu ;;
        riscv64)
            # Debian has riscv64 from trixie on (bookworm has no riscv64 port): 6.12 only.
            deb_arch=riscv64 kmeta=linux-image-riscv64 console=ttyS0 machine="-M virt"
            suite_61="" suite_612=trixie suite_bb=trixie
            qemu_pkg=qemu-system-riscv qemu_name=qemu-system-riscv64 qdir="$cache/qemu-bpo-riscv"
            bios="$qdir/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin"
            rust_target=riscv64gc-unknown-linux-gnu cross=riscv64-linux-gnu ;;
    esac
    mkdir -p "$acache"
}

# The versioned image package the meta package depends on (the ABI number changes).
resolve_image() { # $1 suite
    # shellcheck disable=SC2046
    apt-cache $(apt_opts "$deb_arch" "$1") depends "$kmeta" 2>/dev/null |
        sed -n "s/^ *Depends: \(linux-image-[0-9][^ ]*-${kmeta#linux-image-}\).*/\1/p" |
        grep -v unsigned | head -1
}

fetch_kernel() { # $1 = 6.1 | 6.12; prints the kernel image path
    local want=$1 out="$acache/vmlinuz-$1" suite pkg dir
    if [ -s "$out" ]; then echo "$out"; return; fi
    if [ "$want" = 6.1 ]; then suite=$suite_61; else suite=$suite_612; fi
    [ -n "$suite" ] || { log "Debian has no $want kernel for $deb_arch"; return 1; }
    apt_update "$deb_arch" "$suite" || return 1
    pkg=$(resolve_image "$suite")
    [ -n "$pkg" ] || { log "cannot resolve $kmeta:$deb_arch in $suite"; return 1; }
    case $pkg in *"-$want."*|*"-$want-"*|*"-$want+"*) ;; *) log "resolved $pkg, not a $want kernel"; return 1 ;; esac
    log "downloading $pkg ($deb_arch, $suite)"
    dir=$(mktemp -d)
    if apt_download "$deb_arch" "$suite" "$dir" "$pkg" && dpkg -x "$dir"/*.deb "$dir/x"; then
        cp "$(ls "$dir"/x/boot/vmlinu[xz]-* | head -1)" "$out.tmp" && mv "$out.tmp" "$out"
    fi
    rm -rf "$dir"
    [ -s "$out" ] && echo "$out"
}

# Debian's static busybox for a foreign architecture (the host's comes from busybox-static).
fetch_busybox() {
    local out="$acache/busybox" dir
    [ -n "$busybox" ] && return 0
    if ! [ -s "$out" ]; then
        dir=$(mktemp -d)
        if apt_download "$deb_arch" "$suite_bb" "$dir" busybox-static; then
            dpkg -x "$dir"/*.deb "$dir/x" && cp "$(ls "$dir"/x/bin/busybox "$dir"/x/usr/bin/busybox 2>/dev/null | head -1)" "$out"
        fi
        rm -rf "$dir"
    fi
    [ -s "$out" ] && busybox=$out
}

# QEMU 7.2 (bookworm) TCG crashes 6.12 guests in about half the boots on some hosts
# (AMD EPYC here: GP faults in iretq, double faults with garbage EFLAGS, before or after
# init); QEMU 10 from bookworm-backports booted the same guests 8 of 8 times. So the runner
# extracts backports' QEMU into the cache (nothing installed) and uses it; its libraries
# are the ones bookworm's qemu-system-x86 already pulled in. Sets qemu_bin and qemu_args.
fetch_qemu() {
    local bin="$qdir/usr/bin/$qemu_name" tmp pkgs="$qemu_pkg qemu-system-common qemu-system-data"
    if [ -n "${GUEST_QEMU:-}" ]; then
        qemu_bin=$GUEST_QEMU qemu_args=${GUEST_QEMU_ARGS:-}
        return 0
    fi
    case $arch in x86_64) pkgs="$pkgs seabios" ;; riscv64) pkgs="$pkgs opensbi" ;; esac
    if ! [ -x "$bin" ] || ! "$bin" --version >/dev/null 2>&1; then
        tmp=$(mktemp -d)
        # shellcheck disable=SC2086
        if apt_download amd64 bookworm-backports "$tmp" $pkgs; then
            rm -rf "$qdir"
            for d in "$tmp"/*.deb; do dpkg -x "$d" "$qdir"; done
        fi
        rm -rf "$tmp"
    fi
    if "$bin" --version >/dev/null 2>&1; then
        # Its modules (if any) are its own: the installed QEMU's would only print warnings.
        export QEMU_MODULE_DIR="$qdir/usr/lib/x86_64-linux-gnu/qemu"
        qemu_bin=$bin qemu_args="-L $qdir/usr/share/qemu"
        [ "$arch" = x86_64 ] && qemu_args="-L $qdir/usr/share/seabios $qemu_args"
        [ -n "$bios" ] && qemu_args="$qemu_args -bios $bios"
        return 0
    fi
    [ -x "$bin" ] && log "$bin does not run: $("$bin" --version 2>&1 | head -1)"
    command -v "$qemu_name" >/dev/null || return 1
    qemu_bin=$qemu_name qemu_args=""
    [ "$arch" = riscv64 ] && qemu_args="-bios default"
    echo "WARNING: backports QEMU unavailable; using $("$qemu_name" --version | head -1)," \
         "whose TCG crashes some x86_64 6.12 boots on this host class (boot crashes are retried)"
}

# Builds the payload for $arch (sets payload). x86_64: glibc's static build (the host's gcc
# links). aarch64: musl, linked by rust-lld (no cross gcc). ppc64le and riscv64: rustup has
# no musl standard library for them in this toolchain (its manifest says available = false),
# so glibc's static build, linked by Debian's cross gcc against its static glibc (gcc-<triple>
# and libc6-dev-<arch>-cross, installed from the system's apt sources when missing). An
# architecture asked for is one CI relies on: a standard library or toolchain that cannot
# be had fails the run (returns 1 after saying what is missing); it is never skipped.
build_payload() {
    local var linker=rust-lld flags="" sysroot
    if [ "$arch" = x86_64 ]; then
        log "building the static payload ($rust_target)"
        (cd "$repo" && RUSTFLAGS='-C target-feature=+crt-static' \
            cargo build -q --release --example guest_suite --target "$rust_target") || return 1
        payload="$repo/target/$rust_target/release/examples/guest_suite"
        return 0
    fi
    [ -n "$cross" ] && linker=$cross-gcc flags='-C target-feature=+crt-static'
    if ! rustup target list --installed 2>/dev/null | grep -qx "$rust_target" &&
        ! rustup target add "$rust_target" >/dev/null; then
        log "$arch: rustup could not add the $rust_target standard library"
        return 1
    fi
    if [ -n "$cross" ]; then
        # The cross gcc and the static glibc it links (crt1.o, libc.a) come together.
        sysroot=/usr/$cross/lib
        if ! command -v "$linker" >/dev/null || ! [ -e "$sysroot/libc.a" ]; then
            log "installing gcc-$cross libc6-dev-$deb_arch-cross"
            apt_install "gcc-$cross" "libc6-dev-$deb_arch-cross" ||
                { log "$arch: apt could not install gcc-$cross, libc6-dev-$deb_arch-cross"; return 1; }
        fi
        if ! command -v "$linker" >/dev/null || ! [ -e "$sysroot/libc.a" ]; then
            log "$arch: $linker or $sysroot/libc.a still missing after installing them"
            return 1
        fi
    fi
    log "building the static payload ($rust_target, $linker)"
    var=CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<< "$rust_target")_LINKER
    if [ -n "$flags" ]; then
        (cd "$repo" && env "$var=$linker" RUSTFLAGS="$flags" \
            cargo build -q --release --example guest_suite --target "$rust_target") || return 1
    else
        (cd "$repo" && env "$var=$linker" \
            cargo build -q --release --example guest_suite --target "$rust_target") || return 1
    fi
    payload="$repo/target/$rust_target/release/examples/guest_suite"
}

build_initramfs() { # $1 = payload argument; prints the image path
    local root img="$work/initramfs-$arch-$1.cpio.gz"
    root=$(mktemp -d)
    mkdir -p "$root"/{bin,proc,sys,dev,tmp}
    cp "$busybox" "$root/bin/busybox"
    for t in sh mount poweroff sleep; do ln -s busybox "$root/bin/$t"; done
    cp "$payload" "$root/payload"
    # A multi-call payload: the numaperf command and the run cases' probe are names of it.
    ln -s /payload "$root/bin/numaperf"
    ln -s /payload "$root/bin/placement-probe"
    cat > "$root/init" <<EOF
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# cgroup2, for the memory-limit case (the payload makes and removes its own child group).
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
echo NUMAPERF-BOOTED
# A few 2 MiB huge pages on node 0 only: the hugetlb case needs a node with some and one
# without (a region bound there must be a typed error, not a SIGBUS at first touch).
echo 4 > /sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages 2>/dev/null
/payload $1
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
                 "-numa dist,src=0,dst=1,val=21"
            # x86_64: an e1000 behind a PCI expander bridge on node 1 (the guest sees it at
            # 0000:09:03.0 with numa_node 1; root-bus devices say -1): the device case.
            if [ "$arch" = x86_64 ]; then
                echo "-device pxb,id=b1,bus=pci.0,bus_nr=8,numa_node=1" \
                     "-device e1000,bus=b1,addr=0x3,netdev=n1,romfile= -netdev user,id=n1"
            fi ;;
        4node-cxl)
            local a="-smp 2 -m 1G" n i t lat bw
            # x86_64: an ACPI HMAT (nodes 2 and 3 are CXL-like memory of initiators 0 and
            # 1), for the memory-attributes case: the kernel shows each node's figures in
            # nodeN/access0 and access1 (node2: read_bandwidth 2048, read_latency 40).
            [ "$arch" = x86_64 ] && a="-machine hmat=on $a"
            for n in 0 1 2 3; do
                a="$a -object memory-backend-ram,id=m$n,size=256M -numa node,nodeid=$n,memdev=m$n"
                [ $n -lt 2 ] && a="$a,cpus=$n"
                [ "$arch" = x86_64 ] && a="$a,initiator=$((n % 2))"
            done
            if [ "$arch" = x86_64 ]; then
                for i in 0 1; do
                    for t in 0 1 2 3; do
                        if [ $t = $i ]; then lat=10 bw=10G
                        elif [ $t -lt 2 ]; then lat=20 bw=5G
                        elif [ $((t - 2)) = $i ]; then lat=40 bw=2G
                        else lat=60 bw=1G
                        fi
                        a="$a -numa hmat-lb,initiator=$i,target=$t,hierarchy=memory"
                        a="$a,data-type=access-latency,latency=$lat"
                        a="$a -numa hmat-lb,initiator=$i,target=$t,hierarchy=memory"
                        a="$a,data-type=access-bandwidth,bandwidth=$bw"
                    done
                done
            fi
            echo "$a -numa dist,src=0,dst=1,val=21 -numa dist,src=0,dst=2,val=31" \
                 "-numa dist,src=0,dst=3,val=31 -numa dist,src=1,dst=2,val=31" \
                 "-numa dist,src=1,dst=3,val=31 -numa dist,src=2,dst=3,val=41" ;;
        *) log "unknown topology $1"; return 1 ;;
    esac
}

boot() { # $1 kernel image, $2 initramfs, $3 topology, $4 log file
    local append="console=$console quiet panic=-1 numa_balancing=disable" cpu=""
    [ "$balancing" = on ] && append="console=$console quiet panic=-1 numa_balancing=enable"
    append="$append ${GUEST_APPEND:-}"
    [ -n "$qemu_cpu" ] && cpu="-cpu $qemu_cpu"
    # shellcheck disable=SC2046,SC2086
    timeout -k 5 "$timeout_s" "$qemu_bin" $qemu_args $machine -accel "$qemu_accel" $cpu -nographic -no-reboot \
        -nic none $(qemu_topology "$3") -kernel "$1" -initrd "$2" -append "$append" > "$4" 2>&1 || true
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
mirror=$(debian_mirror) || mirror=""
mode=full
[ "$balancing" = on ] && mode=soft
status=0 table="" runs=""
for a in $arches; do
    arch_setup "$a"
    if ! fetch_qemu; then
        echo "SKIPPED: $arch guests (neither backports' $qemu_pkg nor an installed $qemu_name)"
        continue
    fi
    log "$arch: $("$qemu_bin" --version | head -1)"
    if ! fetch_busybox; then
        echo "SKIPPED: $arch guests (Debian's busybox-static:$deb_arch could not be downloaded)"
        continue
    fi
    if ! build_payload; then
        echo "FAILED: $arch guests (the payload did not build; see the [guest] lines above)"
        status=1
        continue
    fi
    initrd=$(build_initramfs "$mode")
    for k in $kernels; do
        if [ "$arch" = riscv64 ] && [ "$k" = 6.1 ]; then
            echo "SKIPPED: riscv64 Linux 6.1 guests (Debian has riscv64 only from trixie, whose kernel is 6.12)"
            continue
        fi
        if ! vmlinuz=$(fetch_kernel "$k"); then
            echo "SKIPPED: $arch Linux $k guests (the kernel package could not be downloaded)"
            continue
        fi
        for topo in $topologies; do
            if [ "$arch" = riscv64 ] && [ "$topo" = 4node-cxl ]; then
                # QEMU's riscv virt board makes every NUMA node a socket of harts; nodes
                # 2 and 3 have memory only, so it stops: "discontinuous hartids in socket2".
                echo "SKIPPED: riscv64 4node-cxl guests (QEMU's riscv virt board needs CPUs in every NUMA node)"
                continue
            fi
            logf="${GUEST_LOGS:-$work}/guest-$arch-$k-$topo-$mode.log"
            start=$(date +%s)
            for attempt in 1 2 3; do
                boot "$vmlinuz" "$initrd" "$topo" "$logf"
                # Only a kernel that died before running init is booted again: the payload never
                # ran, so nothing of ours was judged. Anything after NUMAPERF-BOOTED counts.
                grep -aq NUMAPERF-BOOTED "$logf" && break
                log "$arch / $topo / $k: the kernel died before init ran (attempt $attempt of 3):"
                tr -d '\r' < "$logf" | grep -a -m3 -E 'panic|Oops|fault' >&2 || true
            done
            secs=$(( $(date +%s) - start ))
            if [ -n "$sysfs_out" ]; then
                if [ "$arch" = x86_64 ]; then save_sysfs "$logf" "$sysfs_out/$topo-$k"
                else save_sysfs "$logf" "$sysfs_out/$topo-$k-$arch"; fi
            fi
            clean=$(tr -d '\r' < "$logf")
            while read -r name result _; do
                table+="$(printf '%-56s %-8s %-10s %-5s %s' "$name" "$arch" "$topo" "$k" "$result")"$'\n'
            done < <(sed -n 's/^.*NUMAPERF-CASE //p' <<< "$clean")
            # NUMAPERF-DONE <passed> <failed> [<skipped>]
            done_line=$(sed -n 's/^.*NUMAPERF-DONE \([0-9]*\) \([0-9]*\) *\([0-9]*\).*/\1 \2 \3/p' <<< "$clean" | tail -1)
            exit_code=$(sed -n 's/^.*NUMAPERF-PAYLOAD-EXIT \([0-9]*\).*/\1/p' <<< "$clean" | tail -1)
            n_pass="" n_fail="" n_skip=""
            read -r n_pass n_fail n_skip <<< "$done_line"
            if [ -z "$done_line" ]; then
                log "$arch / $topo / $k: no NUMAPERF-DONE marker after ${secs}s (timeout, crash or panic); log: $logf"
                tail -5 "$logf" >&2 || true
                status=1 verdict=NO-DONE
            elif [ "$n_fail" != 0 ] || [ "${exit_code:-1}" != 0 ]; then
                log "$arch / $topo / $k: failed cases:"; grep -a ' FAIL ' <<< "$clean" | sed 's/^.*NUMAPERF-CASE /  /' >&2
                status=1 verdict=FAILED
            else
                log "$arch / $topo / $k: $n_pass passed, ${n_skip:-0} skipped in ${secs}s"
                verdict=passed
            fi
            runs+="$(printf '%-8s %-10s %-5s %6s %6s %7s %4ss %8s %s' "$arch" "$topo" "$k" "${n_pass:--}" \
                "${n_fail:--}" "${n_skip:--}" "$secs" "$attempt" "$verdict")"$'\n'
            grep -a ' SKIP ' <<< "$clean" | sed 's/^.*NUMAPERF-CASE /  skipped: /' >&2 || true
        done
    done
done
printf '\n%-56s %-8s %-10s %-5s %s\n' scenario arch topology linux result
printf '%s' "$table"
printf '\n%-8s %-10s %-5s %6s %6s %7s %5s %8s %s\n' arch topology linux passed failed skipped time attempts verdict
printf '%s' "$runs"
if [ -e "$work/no-mirror" ]; then
    echo "FAILED: no Debian mirror in the system's apt sources (URIs: in /etc/apt/sources.list.d/*.sources" \
         "or deb lines in /etc/apt/sources.list), and something had to be downloaded; set GUEST_DEBIAN_MIRROR"
    status=1
fi
if [ $status != 0 ]; then echo "guest runs: FAILED"
elif [ -z "$runs" ]; then echo "guest runs: none ran (all SKIPPED)"
else echo "guest runs: all passed"; fi
exit $status
