# Paths and helpers shared by the host-side scripts of the VM test bed (sourced, not run).
# shellcheck shell=bash
VM_DIR=target/vm
KERNEL_DIR=$VM_DIR/kernel
OUT_DIR=$VM_DIR/out
TEST_IMAGE_TAR=$VM_DIR/testimage.tar

# Prints the unpacked kernel's image path; fails if setup has not fetched one.
kernel_image() {
  local image
  image=$(ls "$KERNEL_DIR"/boot/vmlinuz-* 2>/dev/null | head -n1)
  [[ -n $image ]] && echo "$image"
}
