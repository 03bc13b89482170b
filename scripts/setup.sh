#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test hepcap. Idempotent: each step
# checks first, so a second run costs a few seconds. Needs root (or sudo) for apt-get.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
shared="$here/../shared"
export DEBIAN_FRONTEND=noninteractive

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root to run: $*" >&2; return 1; fi
}

missing=()
need() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed" || missing+=("$1"); }

# Build: libpcap for the pcap crate. Tests: tshark (independent decoder), tcpdump, python3.
for p in libpcap-dev pkg-config tshark tcpdump python3; do need "$p"; done
# Real peers of the end-to-end tests (../shared/harness/install.sh lists the same packages;
# it also asks for Debian's npm, which conflicts with a Node.js that already brings npm).
for p in kamailio kamailio-extra-modules sip-tester sipsak baresip baresip-core sngrep nats-server \
  prometheus curl iproute2; do
  need "$p"
done
command -v node >/dev/null || need nodejs
command -v npm >/dev/null || need npm

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# hep-js, a second independent HEP codec, outside the read-only shared folder.
hepjs_home=${HEPJS_HOME:-/var/tmp/hepcap-hepjs}
if [ -d "$shared/harness/hepjs" ] && [ ! -d "$hepjs_home/node_modules/hep-js" ]; then
  mkdir -p "$hepjs_home"
  cp "$shared/harness/hepjs/package.json" "$shared/harness/hepjs/package-lock.json" "$hepjs_home/"
  (cd "$hepjs_home" && npm ci --no-audit --no-fund --silent)
fi

# eBPF program toolchain (../shared/docs/ebpf-toolchain.md): the nightly toolchain's core
# sources for -Z build-std, and bpf-linker linked against that toolchain's own libLLVM.
if command -v rustup >/dev/null && rustup toolchain list | grep -q '^nightly'; then
  if ! rustup component list --toolchain nightly --installed | grep -q '^rust-src'; then
    rustup component add rust-src --toolchain nightly
  fi
  if ! command -v bpf-linker >/dev/null; then
    sysroot=$(rustc +nightly --print sysroot)
    llvm_so=$(ls "$sysroot"/lib/libLLVM.so.*-rust-* 2>/dev/null | head -n1 || true)
    if [ -n "$llvm_so" ]; then
      [ -e "$sysroot/lib/libLLVM.so" ] || ln -sf "$(basename "$llvm_so")" "$sysroot/lib/libLLVM.so"
      major=$(rustc +nightly -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
      echo "setup: building bpf-linker against nightly's LLVM $major (about 2 minutes)"
      LLVM_PREFIX=$sysroot cargo install --locked bpf-linker --no-default-features \
        --features "llvm-$major"
    else
      echo "setup: nightly has no libLLVM.so; the eBPF program cannot be built" >&2
    fi
  fi
else
  echo "setup: no nightly toolchain; the eBPF program cannot be built (libpcap capture only)" >&2
fi

echo "setup: ok"
