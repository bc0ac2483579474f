# Boots one patchring lab host and boots it again after `reboot` (nspawn exit code 133).
# Run by orchestrator.lab.hosts under `unshare --mount --propagation private`, already inside the
# host's cgroups: the overlay mounted here exists only in this mount namespace and goes with it.
set -u
# Keep a handle on our own network namespace, then drop this namespace's copies of every
# /run/netns mount, so no other lab's namespace is kept alive by this host.
exec 3< "/run/netns/$LAB_NETNS" || exit 91
umount -a -t nsfs 2>/dev/null
mount -t overlay overlay -o "lowerdir=$LAB_LOWER,upperdir=$LAB_UPPER,workdir=$LAB_WORK" "$LAB_MERGED" || exit 90
SYSTEMD_NSPAWN_API_VFS_WRITABLE=network
export SYSTEMD_NSPAWN_API_VFS_WRITABLE
while [ ! -e "$LAB_STOP_FILE" ]; do
    systemd-nspawn -D "$LAB_MERGED" -M "$LAB_MACHINE" --register=no --keep-unit \
        --network-namespace-path=/proc/self/fd/3 --resolv-conf=off \
        --link-journal=no --console=read-only -b &
    echo $! > "$LAB_NSPAWN_PID_FILE"
    wait $!
    status=$?
    [ "$status" -eq 133 ] || exit "$status"
    echo "patchring: $LAB_MACHINE rebooted"
done
