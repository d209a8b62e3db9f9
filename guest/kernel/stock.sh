#!/bin/sh
# stock.sh - fetch Debian's stock kernel package (not installed: unpacked into
# the cache) so specs can check that gondolin boots it with its modules.
# Prints "KERNEL MODULES_DIR" and records it in the cache as stock/current.
set -eu

cache="${XDG_CACHE_HOME:-$HOME/.cache}/gondolin/stock"
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
if [ -z "$pkg" ]; then
	echo "gondolin: cannot find Debian's linux-image-amd64 package (run apt-get update)" >&2
	exit 1
fi
dir="$cache/$pkg"
if [ ! -d "$dir/root/boot" ]; then
	mkdir -p "$cache"
	work=$(mktemp -d "$cache/fetch.XXXXXX")
	trap 'rm -rf "$work"' EXIT INT TERM
	echo "gondolin: fetching $pkg (about 70 MB, once)" >&2
	(cd "$work" && apt-get download "$pkg" >/dev/null 2>&1) || {
		echo "gondolin: apt-get download $pkg failed" >&2
		exit 1
	}
	mkdir -p "$work/out/root"
	dpkg-deb -x "$work"/*.deb "$work/out/root"
	rm -rf "$dir"
	mv "$work/out" "$dir"
fi
kernel=$(ls "$dir"/root/boot/vmlinuz-* | head -1)
modules=$(ls -d "$dir"/root/lib/modules/* | head -1)
echo "$kernel $modules" > "$cache/current"
echo "$kernel $modules"
