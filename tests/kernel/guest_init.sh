#!/bin/busybox sh
# Kernel test tier: init of the QEMU guest (see harness.py). POSIX sh, two stages:
#
# stage 1 (no argument): /init of the initramfs, run by busybox. Loads the modules listed in
#   /modlist, mounts the host root (9p tag "hostroot", read-only) under a tmpfs overlay, mounts
#   the per-run directory (9p tag "netmeta_run", read-write) at /run/netmeta, bind-mounts the
#   guest kernel's module tree (host path netmeta.mods=) on /lib/modules/<kver>, copies itself to
#   /run/netmeta-init and switch_roots into the overlay running "/bin/sh /run/netmeta-init stage2".
# stage 2: runs on the host's userland (overlay, writes go to tmpfs and are discarded). Mounts
#   /dev/pts /dev/shm /tmp debugfs, creates netdevsim device $NSIM_ID with $NUMVFS VFs, then runs
#   /run/netmeta/cmd with bash in $REPO (params from /run/netmeta/params, extra env from
#   /run/netmeta/env). Results for the host, in the run directory:
#     setup.log  stage-2 setup messages    output  the command's stdout+stderr
#     rc         the command's exit status (125 if the guest setup failed)
#     setup_failed  why the guest setup failed (the command did not run)
#   then powers off with sysrq.
R=/run/netmeta

poweroff_now() {
  sync
  echo o > /proc/sysrq-trigger
  sleep 30
}

stage1() {
  export PATH=/bin
  /bin/busybox --install -s /bin
  mkdir -p /proc /sys /dev /lower /upper /newroot
  mount -t proc proc /proc
  mount -t sysfs sysfs /sys
  mount -t devtmpfs devtmpfs /dev
  KV=$(uname -r)
  for m in $(cat /modlist); do
    case "$m" in
      */dummy.ko) insmod "/lib/modules/$KV/$m" numdummies=0 || echo "init: insmod $m failed" ;;
      *) insmod "/lib/modules/$KV/$m" || echo "init: insmod $m failed" ;;
    esac
  done
  MODS=
  for a in $(cat /proc/cmdline); do
    case "$a" in netmeta.mods=*) MODS=${a#netmeta.mods=} ;; esac
  done
  die() { echo "init: FATAL: $*"; poweroff_now; }
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /lower \
    || die "mount 9p hostroot"
  mount -t tmpfs -o mode=0755,size=75% tmpfs /upper || die "mount tmpfs"
  mkdir -p /upper/u /upper/w
  mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /newroot \
    || die "mount overlay"
  for d in proc sys dev run tmp "lib/modules/$KV"; do mkdir -p "/newroot/$d"; done
  mount -t tmpfs -o mode=0755 tmpfs /newroot/run
  mkdir -p "/newroot$R"
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 netmeta_run "/newroot$R" \
    || die "mount 9p netmeta_run"
  # /tmp first: a shared repo may live under /tmp (CI clones anywhere) and must stay on top
  mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp
  SHARE=$(cat "/newroot$R/share" 2>/dev/null)
  if [ -n "$SHARE" ]; then
    mkdir -p "/newroot$SHARE"
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 netmeta_share "/newroot$SHARE" \
      || echo "init: mount 9p netmeta_share on $SHARE failed"
  fi
  if [ -n "$MODS" ] && [ -d "/newroot$MODS" ]; then
    mount --bind "/newroot$MODS" "/newroot/lib/modules/$KV" || echo "init: bind $MODS failed"
  fi
  read -r UP _ < /proc/uptime
  echo "init: [$UP] switch_root"
  # stage 2 keeps using this static busybox (on tmpfs): setting up with the host's dynamic
  # binaries over 9p costs a second or more
  mkdir -p /newroot/run/netmeta-bin
  cp /init /newroot/run/netmeta-init
  cp /bin/busybox /newroot/run/netmeta-bin/busybox
  mount --move /proc /newroot/proc
  mount --move /sys /newroot/sys
  mount --move /dev /newroot/dev
  exec switch_root /newroot /run/netmeta-bin/busybox sh /run/netmeta-init stage2
}

stage2() {
  /run/netmeta-bin/busybox --install -s /run/netmeta-bin
  export PATH=/run/netmeta-bin
  fail() {
    echo "guest setup FAILED: $*"
    echo "guest setup FAILED: $*" > "$R/output"
    echo "$*" > "$R/setup_failed"
    echo 125 > "$R/rc"
    poweroff_now
  }
  exec > "$R/setup.log" 2>&1 < /dev/null
  mkdir -p /dev/pts /dev/shm
  mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
  mount -t tmpfs -o mode=1777 tmpfs /dev/shm
  grep -q " /tmp " /proc/mounts || mount -t tmpfs -o mode=1777 tmpfs /tmp
  mount -t debugfs debugfs /sys/kernel/debug || fail "mount debugfs"
  ip link set lo up
  hostname netmeta-guest 2>/dev/null
  . "$R/params" || fail "no $R/params"      # REPO NSIM_ID NUMVFS
  read -r UP _ < /proc/uptime
  echo "[$UP] stage2: kernel $(uname -r); repo $REPO"
  for m in netdevsim dummy veth; do   # insmod'ed by stage 1
    [ -d "/sys/module/$m" ] || fail "module $m is not loaded (see the console)"
  done
  D=/sys/bus/netdevsim/devices/netdevsim$NSIM_ID
  DBG=/sys/kernel/debug/netdevsim/netdevsim$NSIM_ID
  echo "$NSIM_ID 1" > /sys/bus/netdevsim/new_device || fail "new_device $NSIM_ID"
  PF=$(ls "$D/net" 2>/dev/null | head -n 1)
  [ -n "$PF" ] || fail "netdevsim$NSIM_ID has no netdev"
  if [ "$NUMVFS" -gt 0 ]; then
    echo "$NUMVFS" > "$DBG/max_vfs" || fail "max_vfs=$NUMVFS"
    echo "$NUMVFS" > "$D/sriov_numvfs" || fail "sriov_numvfs=$NUMVFS"
  fi
  ip link set "$PF" up || fail "ip link set $PF up"
  read -r UP _ < /proc/uptime
  echo "[$UP] netdevsim$NSIM_ID: PF $PF (ifindex $(cat "/sys/class/net/$PF/ifindex")), sriov_numvfs $(cat "$D/sriov_numvfs")"
  cd "$REPO" || fail "cd $REPO"
  (
    export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    export NETMETA_IN_GUEST=1 NETMETA_REPO="$REPO" NETMETA_KERNEL_VERSION="$(uname -r)" \
      NETMETA_KERNEL_PF="$PF" NETMETA_KERNEL_PF_IFINDEX="$(cat "/sys/class/net/$PF/ifindex")" \
      NETMETA_KERNEL_NUMVFS="$NUMVFS" NETMETA_KERNEL_NSIM_ID="$NSIM_ID" \
      NETMETA_KERNEL_NSIM_SYSFS="$D" NETMETA_KERNEL_NSIM_DEBUGFS="$DBG" \
      HOME=/root LANG=C.UTF-8 TERM=dumb PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
    . "$R/env"
    exec /bin/bash "$R/cmd"
  ) > "$R/output" 2>&1 < /dev/null
  echo $? > "$R/rc.tmp" && mv "$R/rc.tmp" "$R/rc"
  read -r UP _ < /proc/uptime
  echo "[$UP] command exited $(cat "$R/rc")"
  poweroff_now
}

case "${1:-}" in
  stage2) stage2 ;;
  *) stage1 ;;
esac
