#!/bin/sh
# deps.sh - install the Debian packages gondolin needs; idempotent.
set -eu

# What each group is for:
#   build:   C compiler, make, pkg-config, clang (fuzz + asan) and its runtime
#   lua:     Lua 5.4 with luv, lpeg, busted and luarocks
#   libs:    libuv and mbedTLS headers
#   vm:      QEMU, busybox for the initramfs, musl for the static agent
#   images:  mmdebstrap and e2fsprogs (mkfs.ext4 -d) for `gondolin image build`
#   tests:   openssl (an independent check of the certificates we mint, and the
#            TLS server the upstream client specs talk to)
#   kernel:  Debian's kernel source and what building it needs
PKGS="gcc make pkg-config clang libclang-rt-14-dev
lua5.4 liblua5.4-dev lua-luv lua-luv-dev lua-lpeg lua-lpeg-dev lua-busted luarocks
libuv1-dev libmbedtls-dev
qemu-system-x86 qemu-utils busybox-static musl-tools cpio xz-utils
mmdebstrap e2fsprogs
openssl
linux-source-6.1 bc bison flex libelf-dev libssl-dev"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	echo "deps: all $(echo $PKGS | wc -w) packages present"
	exit 0
fi
echo "deps: installing:$missing"
if [ "$(id -u)" != 0 ]; then
	SUDO=sudo
else
	SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
