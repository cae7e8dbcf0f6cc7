#!/bin/bash
# Kernel test tier: build (once) everything tests/kernel/harness.py boots.
#
#   tests/kernel/setup_guest.sh            # prints the cache directory on stdout
#
# Artifacts, in ${NETMETA_KERNEL_CACHE:-/var/cache/netmeta/kernel-vm}:
#   kernel-<kver>/                 linux-image-<kver>.deb extracted (NOT installed) + the
#                                  out-of-tree extra/netdevsim.ko, depmod'ed
#   kernel-<kver>/vmlinux          uncompressed ELF kernel (PVH entry, QEMU boots it directly)
#   initrd-<kver>.img              busybox + guest_init.sh + virtio/9p/overlay/netdevsim/dummy/veth
#   stamp                          "kver=<kver>" + "recipe=<hash of this script + guest_init.sh>"
# When the stamp matches, nothing else runs (a few ms).
#
# Env: NETMETA_KERNEL_CACHE    cache directory (above)
#      NETMETA_KERNEL_VERSION  Debian kernel ABI, e.g. 6.1.0-57-amd64 (default: the cached one,
#                              else what linux-image-amd64 depends on)
# Exit: 0 ready; 3 prerequisites cannot be had here (not root, apt failure, not x86_64, no
#       writable cache): the kernel tier skips; anything else: a real failure.
# Needs (installed with apt-get when missing, root only): qemu-system-x86 busybox-static cpio
# kmod xz-utils make gcc-12 linux-headers-<kver> linux-source-<major.minor>.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${NETMETA_KERNEL_CACHE:-/var/cache/netmeta/kernel-vm}
T0=$(date +%s%N)

log() { echo "setup_guest: [$(( ($(date +%s%N) - T0) / 1000000 ))ms] $*" >&2; }
unavailable() { echo "setup_guest: UNAVAILABLE: $*" >&2; exit 3; }
die() { echo "setup_guest: ERROR: $*" >&2; exit 1; }

RECIPE=$(cat "$HERE/setup_guest.sh" "$HERE/guest_init.sh" | sha256sum | cut -c1-16)
KVER=${NETMETA_KERNEL_VERSION:-}
if [ -z "$KVER" ] && [ -f "$CACHE/stamp" ]; then
  KVER=$(sed -n 's/^kver=//p' "$CACHE/stamp")
fi

is_ready() {
  [ -n "$KVER" ] && [ "$(cat "$CACHE/stamp" 2>/dev/null)" = "kver=$KVER
recipe=$RECIPE" ] && [ -f "$CACHE/kernel-$KVER/vmlinux" ] && [ -f "$CACHE/initrd-$KVER.img" ] \
    && [ -f "$CACHE/kernel-$KVER/lib/modules/$KVER/modules.dep" ]
}
# ---- fast path: cached ----------------------------------------------------------------
if is_ready; then
  echo "setup_guest: cached ($KVER) in $CACHE" >&2
  echo "$CACHE"
  exit 0
fi

# ---- slow path (serialised between concurrent callers) -------------------------------
[ "$(uname -m)" = x86_64 ] || unavailable "the kernel tier needs an x86_64 host (got $(uname -m))"
mkdir -p "$CACHE" 2>/dev/null && [ -w "$CACHE" ] \
  || unavailable "cache directory $CACHE is not writable (set NETMETA_KERNEL_CACHE)"
exec 9>"$CACHE/.lock"
if ! flock -n 9; then log "waiting for another setup_guest.sh holding $CACHE/.lock"; flock 9; fi
if is_ready; then echo "$CACHE"; exit 0; fi    # someone else just built it

export DEBIAN_FRONTEND=noninteractive
command -v apt-get >/dev/null || unavailable "no apt-get: the kernel tier needs a Debian host"
if [ -z "$KVER" ]; then
  KVER=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: linux-image-\(.*\)$/\1/p' | head -1 || true)
  [ -n "$KVER" ] || unavailable "cannot resolve linux-image-amd64 with apt-cache (run apt-get update, or set NETMETA_KERNEL_VERSION)"
fi
case "$KVER" in [0-9]*.[0-9]*.*-amd64) ;; *) die "unexpected kernel version '$KVER' (want e.g. 6.1.0-57-amd64)";; esac
SRCVER=$(echo "$KVER" | cut -d. -f1-2)          # 6.1.0-57-amd64 -> 6.1
KDIR=$CACHE/kernel-$KVER
MODDIR=$KDIR/lib/modules/$KVER
log "kernel $KVER, cache $CACHE"

# ---- 1. packages ------------------------------------------------------------------------
pkg_ok() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
need=()
for p in qemu-system-x86 cpio kmod xz-utils make gcc-12 "linux-headers-$KVER"; do
  pkg_ok "$p" || need+=("$p")
done
# a static busybox is all the initramfs needs; busybox-static conflicts with (replaces) busybox
BB_LDD=$( { [ -x /bin/busybox ] && LC_ALL=C ldd /bin/busybox 2>&1; } || true)
case "$BB_LDD" in *"not a dynamic"*) ;; *) need+=(busybox-static) ;; esac
ls /usr/src/linux-source-"$SRCVER".tar.* >/dev/null 2>&1 || need+=("linux-source-$SRCVER")
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || unavailable "missing packages (${need[*]}) and not root to apt-get install them"
  log "apt-get install ${need[*]}"
  APT=(apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600)
  if ! "${APT[@]}" "${need[@]}" >&2; then
    log "apt-get install failed; apt-get update and retry"
    apt-get update -q >&2 || true
    "${APT[@]}" "${need[@]}" >&2 || unavailable "apt-get install ${need[*]} failed"
  fi
fi
command -v qemu-system-x86_64 >/dev/null || unavailable "qemu-system-x86_64 not found after install"
SRCTAR=$(ls /usr/src/linux-source-"$SRCVER".tar.* 2>/dev/null | head -1)
[ -n "$SRCTAR" ] || unavailable "no /usr/src/linux-source-$SRCVER.tar.* after installing linux-source-$SRCVER"
HDRS=/usr/src/linux-headers-$KVER
[ -f "$HDRS/Makefile" ] || unavailable "no $HDRS after installing linux-headers-$KVER"

# ---- 2. kernel image + module tree, extracted from the .deb (not installed) ----------------
if [ ! -f "$MODDIR/modules.order" ] || [ ! -f "$KDIR/boot/vmlinuz-$KVER" ]; then
  log "apt-get download linux-image-$KVER"
  rm -rf "$CACHE/debs" "$KDIR.tmp" && mkdir -p "$CACHE/debs" "$KDIR.tmp"
  (cd "$CACHE/debs" && apt-get download -q "linux-image-$KVER" 2>&1 | grep -v -i unsandboxed >&2) || true
  DEB=$(ls "$CACHE"/debs/linux-image-"$KVER"_*.deb 2>/dev/null | head -1)
  [ -n "$DEB" ] || unavailable "apt-get download linux-image-$KVER failed"
  log "extracting $(basename "$DEB")"
  dpkg-deb -x "$DEB" "$KDIR.tmp"
  [ -f "$KDIR.tmp/lib/modules/$KVER/modules.order" ] || die "$DEB has no lib/modules/$KVER"
  rm -rf "$KDIR" "$CACHE/debs" && mv "$KDIR.tmp" "$KDIR"
fi

# uncompressed ELF vmlinux: QEMU enters it through its PVH note, skipping the real-mode
# setup and the XZ decompression of bzImage (several seconds under TCG)
if [ ! -f "$KDIR/vmlinux" ]; then
  log "extracting vmlinux from vmlinuz"
  python3 - "$KDIR/boot/vmlinuz-$KVER" "$KDIR/vmlinux.tmp" <<'PY'
import lzma, struct, sys
d = open(sys.argv[1], "rb").read()
assert d[0x202:0x206] == b"HdrS", "not a bzImage"
off = (d[0x1f1] + 1) * 512                        # setup_sects -> start of protected-mode code
pl_off, pl_len = struct.unpack_from("<II", d, 0x248)   # payload_offset, payload_length
pl = d[off + pl_off:off + pl_off + pl_len]
assert pl[:6] == b"\xfd7zXZ\x00", "payload is not XZ (kernel built with another compressor?)"
out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(pl)
assert out[:4] == b"\x7fELF", "payload is not an ELF"
open(sys.argv[2], "wb").write(out)
PY
  mv "$KDIR/vmlinux.tmp" "$KDIR/vmlinux"
fi

# ---- 3. netdevsim.ko (CONFIG_NETDEVSIM is off in Debian kernels), out of tree --------------
if [ ! -f "$MODDIR/extra/netdevsim.ko" ]; then
  SRC=$CACHE/netdevsim-src-$KVER
  rm -rf "$SRC" && mkdir -p "$SRC"
  log "extracting drivers/net/netdevsim from $SRCTAR"
  tar -xaf "$SRCTAR" -C "$SRC" --strip-components=4 --wildcards "linux-source-$SRCVER/drivers/net/netdevsim/*"
  [ -f "$SRC/Makefile" ] || die "drivers/net/netdevsim not found in $SRCTAR"
  log "building netdevsim.ko against $HDRS (make -j2)"
  make -s -C "$HDRS" M="$SRC" CONFIG_NETDEVSIM=m -j2 modules >&2 || die "netdevsim build failed"
  VM=$(modinfo -F vermagic "$SRC/netdevsim.ko" | cut -d' ' -f1)
  [ "$VM" = "$KVER" ] || die "netdevsim.ko vermagic '$VM' != $KVER"
  mkdir -p "$MODDIR/extra"
  cp "$SRC/netdevsim.ko" "$MODDIR/extra/netdevsim.ko"
  rm -rf "$SRC"
  rm -f "$MODDIR/modules.dep"
fi
if [ ! -f "$MODDIR/modules.dep" ] || ! grep -q '^extra/netdevsim.ko' "$MODDIR/modules.dep"; then
  log "depmod"
  depmod -b "$KDIR" "$KVER"
fi

# ---- 4. initramfs: busybox + guest_init.sh + the modules loaded before the command ----------
log "building initramfs"
IR=$CACHE/initrd-$KVER.tmp
rm -rf "$IR" && mkdir -p "$IR/bin" "$IR/lib/modules/$KVER"
cp /bin/busybox "$IR/bin/busybox"
cp "$HERE/guest_init.sh" "$IR/init" && chmod 755 "$IR/init"
order() {   # module + its dependencies, dependencies first (modules.dep lists them nearest-first)
  local line deps d
  line=$(grep -E "(^|/)$1\.ko(\.[a-z]+)?:" "$MODDIR/modules.dep") || { log "  $1: built in"; return 0; }
  deps=${line#*:}
  for d in $(printf '%s\n' $deps | tac); do echo "$d"; done
  echo "${line%%:*}"
}
# boot: virtio PCI transport, 9p over virtio, overlayfs; tests: netdevsim, dummy, veth
for m in virtio_pci 9pnet_virtio 9p overlay netdevsim dummy veth; do order "$m"; done \
  | awk '!seen[$0]++' > "$IR/modlist.src"
: > "$IR/modlist"
while read -r p; do
  dst=${p%.xz}; dst=${dst%.zst}; dst=${dst%.gz}
  mkdir -p "$IR/lib/modules/$KVER/$(dirname "$p")"
  case "$p" in
    *.xz) xz -dc "$MODDIR/$p" > "$IR/lib/modules/$KVER/$dst" ;;
    *.zst) zstd -qdc "$MODDIR/$p" > "$IR/lib/modules/$KVER/$dst" ;;
    *.gz) gzip -dc "$MODDIR/$p" > "$IR/lib/modules/$KVER/$dst" ;;
    *) cp "$MODDIR/$p" "$IR/lib/modules/$KVER/$dst" ;;
  esac
  echo "$dst" >> "$IR/modlist"
done < "$IR/modlist.src"
rm "$IR/modlist.src"
log "  modules: $(xargs -n1 basename < "$IR/modlist" | tr '\n' ' ')"
(cd "$IR" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) > "$CACHE/initrd-$KVER.img.tmp"
mv "$CACHE/initrd-$KVER.img.tmp" "$CACHE/initrd-$KVER.img"
rm -rf "$IR"

printf 'kver=%s\nrecipe=%s\n' "$KVER" "$RECIPE" > "$CACHE/stamp.tmp"
mv "$CACHE/stamp.tmp" "$CACHE/stamp"
log "done: $(du -sh "$CACHE/initrd-$KVER.img" | cut -f1) initrd, $(du -sh "$KDIR/vmlinux" | cut -f1) vmlinux"
echo "$CACHE"
