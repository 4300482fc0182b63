#!/bin/sh
# shellcheck shell=sh
# PID 1 of the IPVS test VM (busybox sh). prepare.sh installs it as /init in
# the initrd; run.sh boots it. It loads every module up-front, mounts the host
# root read-only (9p tag hostroot) at /mnt and the run share (9p tag runshare)
# at the same path it has on the host, then runs the job script that run.sh
# wrote, chrooted into /mnt, and writes its exit status back to the share.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
dmesg -n 1
hostname ipvs-vm

log() { echo "vm-init: $*" >/dev/console; }
halt_now() {
  sync
  poweroff -f
  sleep 5
}

job=""
shell=0
# shellcheck disable=SC2013 # the words of /proc/cmdline are what we want
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    ipvsvm.job=*) job=${arg#ipvsvm.job=} ;;
    ipvsvm.shell=1) shell=1 ;;
  esac
done

failed=""
while read -r m; do
  [ -n "$m" ] || continue
  if ! out=$(modprobe "$m" 2>&1); then
    failed="$failed $m"
    log "modprobe $m failed: $out"
  fi
done </etc/vm-modules

ip link set lo up

o=trans=virtio,version=9p2000.L,msize=512000
# The host root, read-only (cache=loose: executables load from the page cache
# instead of one 9p round trip per page fault, several times faster). An
# overlay with a tmpfs upper layer makes it writable for the run; the writes
# are dropped at power-off and never reach the host.
mkdir -p /lower /overlay
if ! mount -t 9p -o "$o,ro,cache=loose" hostroot /lower; then
  log "cannot mount the host root (9p tag hostroot)"
  halt_now
fi
mount -t tmpfs -o mode=0755 tmpfs /overlay
mkdir -p /overlay/upper /overlay/work
if ! mount -t overlay -o lowerdir=/lower,upperdir=/overlay/upper,workdir=/overlay/work overlay /mnt 2>/dev/null; then
  log "overlay over the host root failed; the host root stays read-only"
  mount --move /lower /mnt
fi
if ! mount -t 9p -o "$o" runshare /share; then
  log "cannot mount the run share (9p tag runshare)"
  halt_now
fi
dir=/share/$job
if [ -z "$job" ] || [ ! -f "$dir/job.sh" ]; then
  log "no job '$job' in the run share"
  halt_now
fi
IFS= read -r hostshare <"$dir/hostshare"
echo "${failed# }" >"$dir/modules-failed"

mount -o bind /share "/mnt$hostshare"
mount -t proc proc /mnt/proc
mount -t sysfs sysfs /mnt/sys
mount -t devtmpfs devtmpfs /mnt/dev
mkdir -p /mnt/dev/pts /mnt/dev/shm
mount -t devpts -o ptmxmode=0666 devpts /mnt/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /mnt/dev/shm
mount -t tmpfs -o mode=1777 tmpfs /mnt/tmp
mount -t tmpfs -o mode=0755 tmpfs /mnt/run

cut -d' ' -f1 /proc/uptime >"$dir/started"
if [ "$shell" = 1 ]; then
  # shellcheck disable=SC2016 # $1 is expanded by the inner sh
  setsid sh -c 'exec chroot /mnt /bin/bash "$1" <>/dev/ttyS0 >&0 2>&1' sh "$hostshare/$job/job.sh"
else
  chroot /mnt /bin/bash "$hostshare/$job/job.sh" </dev/null >"$dir/stdout" 2>"$dir/stderr"
fi
rc=$?
cut -d' ' -f1 /proc/uptime >"$dir/finished"
dmesg >"$dir/dmesg.log" 2>/dev/null
echo "$rc" >"$dir/status.tmp"
mv "$dir/status.tmp" "$dir/status"
halt_now
