#!/bin/busybox sh
# PID 1 of the test VM (tools/vm/vm.py puts it in the initramfs as /init).
# Loads the modules, makes the simulated hardware (i2c-stub chips, a gpio-sim bank
# with named lines), mounts the host's / read-only and the writable out directory,
# runs out/job.sh chrooted into the host's /, and powers off whatever happens.
# Its settings come from the kernel command line: racklet.out, racklet.i2c, racklet.lines.
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /host
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

say() { echo "racklet-vm: $*"; }
stop() { sync; poweroff -f; }
fail() { say "setup failed: $*"; echo "racklet-vm: exit 99"; stop; }

for word in $(cat /proc/cmdline); do
    case "$word" in
        racklet.out=*) OUT="${word#racklet.out=}" ;;
        racklet.i2c=*) I2C="${word#racklet.i2c=}" ;;
        racklet.lines=*) LINES="${word#racklet.lines=}" ;;
    esac
done

for m in $(cat /lib/modules/order); do
    args=""
    [ "$m" = i2c_stub ] && args="chip_addr=$I2C"
    insmod "/lib/modules/$m.ko" $args || fail "insmod $m"
done

# The GPIO simulator: one chip, one bank, a line per name (gpio-sim's configfs API).
mount -t configfs configfs /sys/kernel/config || fail "configfs"
G=/sys/kernel/config/gpio-sim/racklet
mkdir "$G" "$G/bank0" || fail "gpio-sim configfs"
i=0
for name in $(echo "$LINES" | tr ',' ' '); do
    mkdir "$G/bank0/line$i" && echo "$name" > "$G/bank0/line$i/name" || fail "gpio-sim line $name"
    i=$((i + 1))
done
echo "$i" > "$G/bank0/num_lines"
echo 1 > "$G/live" || fail "gpio-sim live"

# The host's / (read-only), with the kernel's own /proc, /sys, /dev and a writable /run
# (a tmpfs; job.sh points TMPDIR and HOME into it). The host's /tmp stays visible,
# read-only: a checkout and its venv are often there (CI clones into /tmp).
# cache=loose: nothing on the host changes under us while we run.
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 host /host || fail "9p host"
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t configfs configfs /host/sys/kernel/config
mount -t devtmpfs devtmpfs /host/dev
mount -t tmpfs tmpfs /host/run
mkdir -p "/host$OUT" 2>/dev/null   # (it exists already: the host made it)
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out "/host$OUT" || fail "9p out"

ip link set lo up || ifconfig lo 127.0.0.1 up || fail "loopback"   # a server in the VM listens on it
chroot /host /bin/sh "$OUT/job.sh" 2>&1
stop
