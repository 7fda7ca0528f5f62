# Paths and helpers shared by the host-side scripts of the VM test bed (sourced, not run).
# shellcheck shell=bash
VM_DIR=target/vm
KERNEL_DIR=$VM_DIR/kernel
# The newest engine's guest: a Debian unstable root (tests/vm/newroot) and Debian stable's kernel.
NEW_ROOT=$VM_DIR/root-new
NEW_KERNEL_DIR=$VM_DIR/kernel-new
OUT_DIR=$VM_DIR/out
TEST_IMAGE_TAR=$VM_DIR/testimage.tar
# Paths of the compiled crates/*/tests/kernel_*.rs binaries, one a line, for scenario 15 to run in the VM.
KERNEL_TESTS_LIST=$VM_DIR/kernel-tests.txt

# Puts virtme-ng's `vng` on PATH if pip installed it where PATH does not look (a pyenv without
# a rehash, a user scripts directory). Fails if it is not installed.
find_vng() {
  command -v vng >/dev/null && return 0
  command -v pyenv >/dev/null && pyenv rehash 2>/dev/null && command -v vng >/dev/null && return 0
  local scripts
  for scripts in "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)" \
    "$(python3 -m site --user-base 2>/dev/null)/bin"; do
    [[ -x $scripts/vng ]] && PATH=$scripts:$PATH && return 0
  done
  return 1
}

# unpack_kernel DEB DIR: unpacks Debian's kernel package DEB under DIR (replacing it), with its
# modules under DIR/lib/modules (where depmod -b and vng look; kernels built for a merged /usr
# ship them under usr/lib) and their index, and fails unless the modules vxbus needs are there.
unpack_kernel() {
  local deb=$1 dir=$2 version mod
  rm -rf "$dir" && mkdir -p "$dir"
  dpkg-deb -x "$deb" "$dir"
  if [[ ! -d $dir/lib/modules && -d $dir/usr/lib/modules ]]; then
    mkdir -p "$dir/lib" && mv "$dir/usr/lib/modules" "$dir/lib/"
  fi
  version=$(ls "$dir/lib/modules")
  depmod -b "$dir" "$version"
  for mod in vcan vxcan can-gw can-raw can-dev; do
    modinfo -b "$dir" -k "$version" "$mod" >/dev/null ||
      { echo "$(basename "$deb") has no $mod module" >&2; return 1; }
  done
}

# Prints the image path of the kernel unpacked under DIR (default: the 6.1 kernel's); fails if
# setup has not fetched one.
kernel_image() {
  local image
  image=$(ls "${1:-$KERNEL_DIR}"/boot/vmlinuz-* 2>/dev/null | head -n1)
  [[ -n $image ]] && echo "$image"
}
