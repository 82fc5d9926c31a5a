#!/usr/bin/env bash
# Builds the freestanding program for x86_64-unknown-none (a static, non-PIE ELF with its
# own _start and raw syscalls, no libc, no allocator), runs it on this x86_64 Linux host,
# and fails unless its output ends with `FREESTANDING DONE <n> passed, 0 failed` (n > 0).
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TERM_COLOR=never
TARGET=x86_64-unknown-none

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
    echo "SKIPPED: freestanding run (needs an x86_64 Linux host, this is $(uname -s)-$(uname -m))"
    exit 0
fi
if ! rustup target add "$TARGET"; then
    echo "SKIPPED: freestanding run (rustup target add $TARGET failed)"
    exit 0
fi

cargo fmt -- --check
cargo clippy --release --target "$TARGET" -- -D warnings
cargo build --release --target "$TARGET"
BIN="target/$TARGET/release/numaperf-freestanding"
file "$BIN" 2>/dev/null || true
ls -l "$BIN"

set +e
OUT="$("./$BIN")"
STATUS=$?
set -e
printf '%s\n' "$OUT"

LAST="$(printf '%s\n' "$OUT" | tail -n 1)"
if [ "$STATUS" -ne 0 ]; then
    echo "freestanding: the program exited with status $STATUS"
    exit 1
fi
if ! [[ "$LAST" =~ ^FREESTANDING\ DONE\ ([0-9]+)\ passed,\ 0\ failed$ ]] || [ "${BASH_REMATCH[1]}" -eq 0 ]; then
    echo "freestanding: the output does not end with 'FREESTANDING DONE <n> passed, 0 failed' (n > 0)"
    exit 1
fi
if printf '%s\n' "$OUT" | grep -q ' FAIL '; then
    echo "freestanding: a check failed"
    exit 1
fi
echo "freestanding: ${BASH_REMATCH[1]} checks passed"
