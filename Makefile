# gondolin - top-level build. `make help` lists the targets.
LUA        ?= lua5.4
LUA_INC    ?= /usr/include/lua5.4
BUSTED     ?= $(LUA) /usr/bin/busted
CC         ?= cc
CLANG      ?= clang
BUILD      ?= build

# Install locations (LuaRocks passes its own).
PREFIX     ?= /usr/local
LUADIR     ?= $(PREFIX)/share/lua/5.4
LIBDIR     ?= $(PREFIX)/lib/lua/5.4
BINDIR     ?= $(PREFIX)/bin

WARN       := -Wall -Wextra -Werror
CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE $(WARN) -Icsrc
HOST_CFLAGS ?= -O2 -g
HOST_CFLAGS += $(CFLAGS_COMMON) -fPIC -I$(LUA_INC) -I$(LUA_INC)/luv $(shell pkg-config --cflags libuv 2>/dev/null)
TLS_LIBS   := -lmbedtls -lmbedx509 -lmbedcrypto
HOST_LIBS  := -llua5.4-luv -luv $(TLS_LIBS)

PROTO_SRC  := $(wildcard csrc/proto/*.c)
# Pure protocol code (no libuv, no Lua): shared by the module and the fuzzers.
# Files of those folders that drive I/O on the loop (they use libuv) go
# into the module only.
PROTO_DIRS := $(wildcard csrc/net/*.c) $(wildcard csrc/http/*.c) $(wildcard csrc/policy/*.c) \
              $(wildcard csrc/tls/*.c) $(wildcard csrc/vfs/*.c)
LOOP_SRC   := $(shell grep -lwE 'uv_[a-z_]+' $(PROTO_DIRS) /dev/null 2>/dev/null)
PURE_SRC   := $(PROTO_SRC) $(filter-out $(LOOP_SRC),$(PROTO_DIRS))
CORE_SRC   := $(PURE_SRC) $(LOOP_SRC) $(wildcard csrc/vmm/*.c) $(wildcard csrc/api/*.c)
CORE_HDR   := $(wildcard csrc/*/*.h)
CORE_SO    := $(BUILD)/gondolin/core.so

AGENT_SRC  := $(wildcard guest/agent/*.c) $(PROTO_SRC)
AGENT      := $(BUILD)/guest/gondolin-agent
MUSL_CC    ?= musl-gcc
GUEST_DIR  := $(BUILD)/guest

.PHONY: all module agent guest kernel stock-kernel deps run test test-unit test-vm test-hostile asan fuzz fuzz-long bench install check-install valgrind clean help

all: module guest

help:
	@echo "make deps     install the Debian packages gondolin needs (idempotent)"
	@echo "make          build the C module, the guest agent and guest files"
	@echo "make kernel   build and cache the guest kernel (once, ~10 min)"
	@echo "make run      deps + build + kernel, then run examples/hello.lua"
	@echo "make test     unit specs, VM specs, then the hostile-guest battery"
	@echo "make asan     unit specs against an ASan+UBSan build of the module"
	@echo "make valgrind unit specs and examples/hello.lua under valgrind"
	@echo "make fuzz     run every libFuzzer target for FUZZ_SECONDS (default 30)"
	@echo "make fuzz-long every target for FUZZ_LONG_SECONDS (600), corpora kept in fuzz/corpus/"
	@echo "make bench    run the benchmarks in bench/"
	@echo "make install  install module, Lua files, guest files and the CLI"

deps:
	@sh .ci/deps.sh

module: $(CORE_SO)

$(CORE_SO): $(CORE_SRC) $(CORE_HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(HOST_CFLAGS) -shared -o $@ $(CORE_SRC) $(HOST_LIBS)

agent: $(AGENT)

$(AGENT): $(AGENT_SRC) $(wildcard guest/agent/*.h) csrc/proto/frame.h csrc/proto/cbor.h Makefile
	@mkdir -p $(dir $@)
	$(MUSL_CC) -static -Os $(CFLAGS_COMMON) -o $@ $(AGENT_SRC)

# Everything the runtime needs to assemble `minimal` and build `base`.
guest: $(AGENT)
	@mkdir -p $(GUEST_DIR)/kernel $(GUEST_DIR)/image $(GUEST_DIR)/images
	cp guest/floor $(GUEST_DIR)/
	cp guest/image/*.lua $(GUEST_DIR)/image/
	cp examples/images/base.lua $(GUEST_DIR)/images/
	cp guest/kernel/config guest/kernel/build.sh $(GUEST_DIR)/kernel/

kernel:
	@sh guest/kernel/build.sh >/dev/null

# Debian's stock kernel, unpacked into the cache (for the GONDOLIN_KERNEL spec).
stock-kernel:
	@sh guest/kernel/stock.sh >/dev/null

run: deps all kernel
	$(LUA) bin/gondolin examples/hello.lua

test: all kernel test-unit test-vm test-hostile

test-unit: all
	$(BUSTED) --run=unit

test-vm: all kernel stock-kernel
	$(BUSTED) --run=vm

# The hostile-guest battery (spec/hostile): attacks on the host, measured.
test-hostile: all kernel
	$(BUSTED) --run=hostile

# ASan needs its runtime first in the process; lua5.4 is not built with it.
# Children (qemu-img) must not inherit the preload: it hangs them; specs
# that run bin/gondolin put it back for that child (helpers/util.lua).
ASAN_SO := $(BUILD)/asan/gondolin/core.so
asan:
	@mkdir -p $(dir $(ASAN_SO))
	$(CLANG) $(HOST_CFLAGS) -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
		-fno-sanitize-recover=all -shared -o $(ASAN_SO) $(CORE_SRC) $(HOST_LIBS)
	LD_PRELOAD="$$($(CLANG) -print-file-name=libclang_rt.asan-x86_64.so)" \
	GONDOLIN_ASAN_RUNTIME="$$($(CLANG) -print-file-name=libclang_rt.asan-x86_64.so)" \
	ASAN_OPTIONS=detect_leaks=0 GONDOLIN_CPATH=$(BUILD)/asan/?.so \
		$(LUA) -e 'require("luv").os_unsetenv("LD_PRELOAD")' /usr/bin/busted --run=unit

# The host module under valgrind (memcheck), unit specs plus real VM runs
# (workspace.lua serves realfs and a Lua provider: realfs walks, as valgrind
# has no openat2).
valgrind: all kernel
	valgrind -q --error-exitcode=9 $(BUSTED) --run=unit
	valgrind -q --error-exitcode=9 $(LUA) bin/gondolin examples/hello.lua
	valgrind -q --error-exitcode=9 $(LUA) bin/gondolin examples/workspace.lua

FUZZ_SECONDS ?= 30
FUZZ_TARGETS := $(patsubst fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard fuzz/*_fuzz.c))
$(BUILD)/fuzz/%: fuzz/%.c $(PURE_SRC) $(CORE_HDR) $(wildcard fuzz/*.h)
	@mkdir -p $(dir $@)
	$(CLANG) -g -O1 $(CFLAGS_COMMON) -fsanitize=fuzzer,address,undefined -o $@ $< $(PURE_SRC) $(TLS_LIBS)

# The agent's FS client (its fuse files and port.c, not main.c: the target
# stubs what they take from it), built for the host like the other targets.
FUSE_FUZZ_SRC := $(addprefix guest/agent/,fuse.c fuse_req.c fuse_reply.c fuse_node.c port.c)
$(BUILD)/fuzz/fs_reply_fuzz: fuzz/fs_reply_fuzz.c $(FUSE_FUZZ_SRC) $(PROTO_SRC) $(CORE_HDR) $(wildcard guest/agent/*.h)
	@mkdir -p $(dir $@)
	$(CLANG) -g -O1 $(CFLAGS_COMMON) -Iguest/agent -fsanitize=fuzzer,address,undefined -o $@ $< $(FUSE_FUZZ_SRC) $(PROTO_SRC)

FUZZ_JOBS ?= $(shell nproc)
FUZZ_LONG_SECONDS ?= 600
fuzz: $(FUZZ_TARGETS)
	@bash fuzz/run.sh $(FUZZ_SECONDS) 1 0 $(FUZZ_TARGETS)

# Every target for FUZZ_LONG_SECONDS (at least 10 minutes), FUZZ_JOBS at
# once; what they find is merged into fuzz/corpus/ (commit it).
fuzz-long: $(FUZZ_TARGETS)
	@bash fuzz/run.sh $(FUZZ_LONG_SECONDS) $(FUZZ_JOBS) 1 $(FUZZ_TARGETS)

bench: all kernel
	$(LUA) bin/gondolin bench/boot.lua
	$(LUA) bin/gondolin bench/exec.lua
	$(LUA) bin/gondolin bench/image.lua
	$(LUA) bin/gondolin bench/vfs.lua
	$(LUA) bin/gondolin bench/hostile.lua

install: all
	install -d $(DESTDIR)$(LIBDIR)/gondolin $(DESTDIR)$(LUADIR)/gondolin/image $(DESTDIR)$(BINDIR)
	install -m 755 $(CORE_SO) $(DESTDIR)$(LIBDIR)/gondolin/core.so
	install -m 644 lua/gondolin/*.lua $(DESTDIR)$(LUADIR)/gondolin/
	install -m 644 lua/gondolin/image/*.lua $(DESTDIR)$(LUADIR)/gondolin/image/
	install -d $(DESTDIR)$(LUADIR)/gondolin/guest
	cp -r $(GUEST_DIR)/. $(DESTDIR)$(LUADIR)/gondolin/guest/
	install -m 755 bin/gondolin $(DESTDIR)$(BINDIR)/gondolin

# Install with LuaRocks into a scratch tree and run the installed CLI once.
check-install:
	@t=$$(mktemp -d) && trap 'rm -rf "$$t"' EXIT && \
	luarocks --lua-version=5.4 make --tree "$$t" rockspec/gondolin-scm-1.rockspec >"$$t.log" 2>&1 || \
		{ cat "$$t.log"; rm -f "$$t.log"; exit 1; } ; rm -f "$$t.log"; \
	LUA_PATH="$$t/share/lua/5.4/?.lua;$$t/share/lua/5.4/?/init.lua;;" \
	LUA_CPATH="$$t/lib/lua/5.4/?.so;;" "$$t/bin/gondolin" exec -- sh -c 'echo installed gondolin works' && \
	echo "check-install: ok"

clean:
	rm -rf $(BUILD)
