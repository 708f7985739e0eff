#!/usr/bin/env bash
# IPAM benchmarks (nauti-ipam):
#  1. ADD+DEL per invocation as a CNI binary, against Debian's host-local, same config shape,
#     N pairs each (IPAM_BENCH_N, default 500), the plugins taking turns pair by pair; the plugin
#     both as built by default (dynamic glibc) and statically linked (how it should be packaged).
#  2. In-process allocations per second and bytes of state on a /12 at 0%, 50% and 99% full.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${IPAM_BENCH_N:-500}
steps=${IPAM_BENCH_STEPS:-1000000}
host_local=${HOST_LOCAL:-/usr/lib/cni/host-local}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
triple=$(rustc -vV | sed -n 's/^host: //p')

cargo build -q --release -p nauti-ipam --bins --examples
# --target keeps the static build's artifacts apart, and keeps RUSTFLAGS off build scripts.
RUSTFLAGS="-C target-feature=+crt-static" cargo build -q --release -p nauti-ipam --bin nauti-ipam --target "$triple"

# Installed by copying, as a package would: a binary the linker has just written sits in the
# page cache in small pieces and takes more page faults per exec (about 10% slower here).
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
install -m 0755 "$CARGO_TARGET_DIR/release/nauti-ipam" "$bin/nauti-ipam-dynamic"
install -m 0755 "$CARGO_TARGET_DIR/$triple/release/nauti-ipam" "$bin/nauti-ipam-static"

loadavg() { cut -d" " -f1-3 /proc/loadavg; }
echo "# machine: $(nproc) cores, $(uname -r), $(findmnt -no FSTYPE -T "${TMPDIR:-/tmp}") under ${TMPDIR:-/tmp}, load average $(loadavg)"
echo "## CNI binary: ADD+DEL per pair"
"$CARGO_TARGET_DIR/release/examples/cni_bench" "$n" "$host_local" \
  "static=$bin/nauti-ipam-static" \
  "dynamic=$bin/nauti-ipam-dynamic"
echo "# load average after: $(loadavg)"
echo "## In-process allocator on a /12"
"$CARGO_TARGET_DIR/release/examples/alloc_bench" "$steps"
