#!/bin/sh
# build.sh - build the gondolin guest kernel from Debian's linux-source-6.1, once.
#
# Usage: build.sh [print-path]
# The result is cached under $XDG_CACHE_HOME/gondolin/kernel/<source version>-<config hash>/
# and reused while neither the source package nor guest/kernel/config changes.
# With "print-path" it only prints where the kernel is (or would be) and exits.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
fragment="$here/config"
tarball=/usr/src/linux-source-6.1.tar.xz
cache="${XDG_CACHE_HOME:-$HOME/.cache}/gondolin/kernel"

version=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || true)
hash=$(sha256sum "$fragment" | cut -c1-16)
out="$cache/${version:-none}-$hash"

if [ "${1:-}" = print-path ]; then echo "$out/bzImage"; exit 0; fi
if [ -f "$out/bzImage" ]; then echo "$out/bzImage"; exit 0; fi
if [ ! -f "$tarball" ] || [ -z "$version" ]; then
	echo "gondolin: kernel source missing: install it with 'apt-get install linux-source-6.1' (or run 'make deps')" >&2
	exit 1
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

echo "gondolin: building guest kernel $version (config $hash), once; about 10 minutes on 2 cores" >&2
echo "gondolin: [1/3] unpacking source" >&2
tar -xJf "$tarball" -C "$work"
src="$work/linux-source-6.1"

echo "gondolin: [2/3] configuring" >&2
make -s -C "$src" ARCH=x86_64 KCONFIG_ALLCONFIG="$fragment" allnoconfig >"$work/config.log" 2>&1
# Every option the fragment sets must have survived dependency resolution.
missing=0
while IFS= read -r line; do
	case "$line" in CONFIG_*=*) ;; *) continue ;; esac
	opt=${line%%=*}; val=${line#*=}
	if [ "$val" = n ]; then
		grep -q "^$opt=" "$src/.config" && { echo "gondolin: $opt should be off" >&2; missing=1; }
	else
		grep -qx "$opt=$val" "$src/.config" || { echo "gondolin: $opt=$val did not take" >&2; missing=1; }
	fi
done <"$fragment"
[ "$missing" = 0 ] || exit 1

echo "gondolin: [3/3] compiling (progress: objects built)" >&2
jobs=$(nproc 2>/dev/null || echo 2)
make -C "$src" ARCH=x86_64 -j"$jobs" bzImage 2>"$work/build.err" |
	awk '/^  (CC|AS|LD|AR)/ { n++; if (n % 200 == 0) { printf "gondolin:   %d objects\n", n > "/dev/stderr" } }'
if [ ! -f "$src/arch/x86/boot/bzImage" ]; then
	tail -30 "$work/build.err" >&2
	echo "gondolin: kernel build failed" >&2
	exit 1
fi

mkdir -p "$out.tmp"
cp "$src/arch/x86/boot/bzImage" "$src/vmlinux" "$src/.config" "$out.tmp/"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out/bzImage"
