#!/usr/bin/env lua5.4
-- SPDX-License-Identifier: MIT
-- make_seeds.lua - writes the small seed inputs for fuzz/*_fuzz.c
-- Run from the repository root: lua5.4 fuzz/seeds/make_seeds.lua

local dir = arg[1] or "fuzz/seeds"

-- Minimal CBOR encoder (shortest heads), enough for the seeds.
local function head(major, v)
  if v < 24 then return string.char(major << 5 | v) end
  if v < 0x100 then return string.char(major << 5 | 24, v) end
  if v < 0x10000 then return string.char(major << 5 | 25) .. string.pack(">I2", v) end
  if v < 0x100000000 then return string.char(major << 5 | 26) .. string.pack(">I4", v) end
  return string.char(major << 5 | 27) .. string.pack(">I8", v)
end

local function uint(v) return head(0, v) end
local function nint(v) return head(1, -1 - v) end
local function text(s) return head(3, #s) .. s end
local function bytes(s) return head(2, #s) .. s end
local function array(t) return head(4, #t) .. table.concat(t) end
local function map(pairs_)
  local out = {}
  for i = 1, #pairs_, 2 do out[#out + 1] = text(pairs_[i]) .. pairs_[i + 1] end
  return head(5, #pairs_ // 2) .. table.concat(out)
end
local T, F, NULL = "\xf5", "\xf4", "\xf6"

local function frame(ty, id, payload)
  return string.pack(">I4BI4", #payload, ty, id) .. payload
end

local function write(name, data)
  local f = assert(io.open(dir .. "/" .. name, "wb"))
  f:write(data)
  f:close()
end

local exec_start = map {
  "argv", array { text "/bin/sh", text "-c", text "echo hi" },
  "env", array { text "A=1" },
  "cwd", text "/tmp",
  "pty", F,
  "stdin", T,
  "timeout_ms", uint(5000),
  "window", uint(262144),
}
local credit = map { "stdout", uint(65536), "stderr", uint(65536) }

-- cbor_fuzz: one CBOR item (or junk) per file.
os.execute("mkdir -p " .. dir .. "/cbor_fuzz " .. dir .. "/frame_fuzz")
write("cbor_fuzz/exec_start", exec_start)
write("cbor_fuzz/credit", credit)
write("cbor_fuzz/ints", array { uint(0), uint(23), uint(24), uint(255), uint(256),
  uint(65536), uint(1 << 32), nint(-1), nint(-25), nint(-70000) })
write("cbor_fuzz/misc", map { "b", bytes "\0\1\2", "n", NULL, "t", T, "f", F,
  "nest", array { array { array { map { "x", uint(1) } } } } })
write("cbor_fuzz/noncanon", "\xa1\x78\x01a\x19\x00\x05")  -- {"a": 5} with long heads
write("cbor_fuzz/deep", string.rep("\x81", 17) .. "\x00")  -- one level too deep

-- frame_fuzz: first byte = parameters (max_payload 1 + 4 * (b & 63), bit 6 tiny chunks).
local frames = frame(1, 1, exec_start) .. frame(2, 1, "hello") .. frame(3, 1, "")
  .. frame(4, 1, credit) .. frame(7, 0, "ping")
write("frame_fuzz/session", "\x3f" .. frames)
write("frame_fuzz/tiny_chunks", "\x7f" .. frames)
write("frame_fuzz/oversized", "\x08" .. frame(7, 0, string.rep("x", 40))
  .. frame(7, 0, "ok") .. string.pack(">I4BI4", 0xffffffff, 2, 9))

-- secrets_fuzz: byte 0 = secrets (b & 3), query opt-in (bit 2), body opt-in
-- per secret (bits 3..5); then per secret a length byte (1 + b % 24) and the
-- value; the rest is the text. The target's placeholders use random bytes
-- k * 17 + 1, names "A", "B_2", "c".
local function ph(name, k) return "GONDOLIN_SECRET_" .. name .. "_" .. string.rep(("%02x"):format(k * 17 + 1), 24) end
os.execute("mkdir -p " .. dir .. "/secrets_fuzz")
write("secrets_fuzz/query_headers", "\x0e" .. "\x04s3cr3" .. "\x02abc" ..
  "/api?token=" .. ph("A", 0) .. "&b=" .. ph("B_2", 1) .. " Bearer s3cr3 abc")
write("secrets_fuzz/body", "\x3b" .. "\x05value" .. "\x07longer-v" .. "\x00x" ..
  '{"a":"' .. ph("A", 0) .. '","b":"' .. ph("B_2", 1) .. ph("c", 2) .. '"} value x ' ..
  ph("A", 0):sub(1, 30))

-- fs_request_fuzz: requests [type u8][len u16 BE][payload] against routes
-- "/" (deferred), "/c" (stub C provider) and "/c/ro" (read-only, hidden
-- "/secret", denied "/x").
local function req(ty, payload) return string.pack(">BI2", ty, #payload) .. payload end
os.execute("mkdir -p " .. dir .. "/fs_request_fuzz")
write("fs_request_fuzz/c_session",
  req(0x01, map { "path", text "/c/a" }) ..
  req(0x0c, map { "path", text "/c/new", "mode", uint(420), "access", uint(2), "excl", F, "trunc", T }) ..
  req(0x0e, map { "fh", uint(1 << 32 | 1), "offset", uint(0) } .. "data") ..
  req(0x0d, map { "fh", uint(1 << 32 | 1), "offset", uint(0), "size", uint(4096) }) ..
  req(0x03, map { "path", text "/c/a", "fh", uint(1 << 32 | 1), "mode", uint(493), "mtime", text "now",
                  "atime", nint(-5), "size", uint(3) }) ..
  req(0x11, map { "path", text "/c/a", "offset", uint(0), "plus", T }) ..
  req(0x10, map { "fh", uint(1 << 32 | 1) }))
write("fs_request_fuzz/rules",
  req(0x02, map { "path", text "/c/ro/secret" }) ..
  req(0x06, map { "path", text "/c/ro/d", "mode", uint(493) }) ..
  req(0x09, map { "from", text "/c/a", "to", text "/c/ro/b", "flags", uint(1) }) ..
  req(0x11, map { "path", text "/c/ro", "offset", uint(1) }) ..
  req(0x0b, map { "path", text "/c/ro/x", "access", uint(1) }) ..
  req(0x0a, map { "from", text "/c/a", "to", text "/c/a/secret" }))
write("fs_request_fuzz/deferred",
  req(0x0b, map { "path", text "/w/f", "access", uint(0) } .. "\x05") ..
  req(0x0d, map { "fh", uint(1 << 32 | 1), "offset", uint(7), "size", uint(100) }) ..
  req(0x04, map { "path", text "/w/l" }) ..
  req(0x11, map { "path", text "/", "offset", uint(0) } .. "\x23") ..
  req(0x05, map { "path", text "/w/s", "target", text "../t" }) ..
  req(0x12, map { "path", text "/" }) ..
  req(0x13, map { "path", text "/w", "mask", uint(2) } .. "\x81"))
write("fs_request_fuzz/malformed",
  req(0x01, "\xa1\x64path\x63/a/") .. req(0x30, map {}) .. req(0x01, "\xbf") ..
  req(0x0d, map { "fh", uint(99), "offset", uint(0), "size", uint(1 << 20) }) ..
  req(0x01, map { "path", text "/a/../b" }) .. req(0x01, map { "path", uint(3) }))

-- fs_reply_fuzz: byte 0 = setup (bit 0 a second mount on "/", bit 2 a chain
-- of long names, bit 3 a grown node table), then records
-- [cmd u8][len u16 BE][body]: 0 kernel request [opcode | mount << 7][nodesel]
-- [fixed struct, little endian][names]; 2 host frame [idsel][type][payload];
-- 3 built reply [idsel][shape][params]; 4 port gone; 5 port back. idsel 0 =
-- the first request in flight (each seed keeps one or two in flight).
local function rec(cmd, body) return string.pack(">BI2", cmd, #body) .. body end
local function kreq(op, nodesel, body, mount)
  return rec(0, string.char(op | (mount or 0) << 7, nodesel) .. (body or ""))
end
local function reply(payload, idsel) return rec(2, string.char(idsel or 0, 0x80) .. payload) end
local function read_in(fh, off, size) return string.pack("<I8I8I4I4I8I4I4", fh, off, size, 0, 0, 0, 0) end
local function attr(mode, size) return map { "mode", uint(mode), "size", uint(size or 0),
  "mtime", uint(1700000000 * 1000000000), "ttl_ms", uint(1000) } end
local FILE, DIR = 0x81a4, 0x41ed
local LOOKUP, GETATTR, READLINK, MKNOD, MKDIR, UNLINK, OPEN, READ, WRITE, STATFS, RELEASE =
  1, 3, 5, 8, 9, 10, 14, 15, 16, 17, 18
local FORGET, READDIR, CREATE, READDIRPLUS, RENAME2, INIT = 2, 28, 35, 44, 45, 26
os.execute("mkdir -p " .. dir .. "/fs_reply_fuzz")
write("fs_reply_fuzz/session", "\0" ..
  kreq(INIT, 0, string.pack("<I4I4I4I4", 7, 38, 131072, 0xffffffff) .. string.rep("\0", 48)) ..
  kreq(LOOKUP, 0, "a\0") .. reply(map { "attr", attr(FILE, 5) }) ..
  kreq(MKDIR, 0, string.pack("<I4I4", 493, 18) .. "d\0") .. reply(map { "attr", attr(DIR) }) ..
  kreq(GETATTR, 1, string.pack("<I4I4I8", 0, 0, 0)) .. reply(map { "attr", attr(FILE, 5) }) ..
  kreq(OPEN, 1, string.pack("<I4I4", 2, 0)) .. reply(map { "fh", uint(7) }) ..
  kreq(READ, 1, read_in(7, 0, 100)) .. reply(map {} .. "hello") ..
  kreq(WRITE, 1, read_in(7, 5, 3) .. "xyz") .. reply(map { "size", uint(3) }) ..
  kreq(RELEASE, 1, string.pack("<I8I4I4I8", 7, 2, 0, 0)) .. reply(map {}) ..
  kreq(READDIRPLUS, 0, read_in(0, 0, 4096)) .. reply(map {
    "entries", array { array { text "e", attr(FILE) }, array { text "f", attr(DIR) } },
    "eof", T }) ..
  kreq(READDIR, 0, read_in(0, 3, 4096)) .. reply(map { "entries", array {}, "eof", T }) ..
  kreq(CREATE, 0, string.pack("<I4I4I4I4", 2, FILE, 18, 0) .. "n\0") ..
  reply(map { "fh", uint(9), "attr", attr(FILE) }) ..
  kreq(MKNOD, 0, string.pack("<I4I4I4I4", FILE, 0, 18, 0) .. "m\0") ..
  reply(map { "fh", uint(10), "attr", attr(FILE) }) .. reply(map {}) ..
  kreq(RENAME2, 0, string.pack("<I8I4I4", 0, 0, 0) .. "a\0b\0") .. reply(map {}) ..
  kreq(UNLINK, 0, "b\0") .. reply(map {}) ..
  kreq(STATFS, 0) .. reply(map { "bsize", uint(4096), "blocks", uint(100), "bfree", uint(50),
    "bavail", uint(50), "files", uint(10), "ffree", uint(5), "namelen", uint(255) }) ..
  kreq(READLINK, 2) .. reply(map { "target", text "../t" }) ..
  kreq(FORGET, 1, string.pack("<I8", 1)))
write("fs_reply_fuzz/bad_replies", "\0" ..
  kreq(LOOKUP, 0, "a\0") .. reply(map { "err", text "ENOENT" }) ..
  kreq(LOOKUP, 0, "a\0") .. reply("\xa1") ..
  kreq(LOOKUP, 0, "a\0") .. reply(map { "attr", map { "mode", text "x" } }) ..
  kreq(LOOKUP, 0, "a\0") .. reply(map { "attr", map { "mode", uint(0644) } }) ..
  kreq(LOOKUP, 0, "a\0") .. reply(map { "attr", attr(FILE) } .. "\0") ..
  kreq(READ, 0, read_in(1, 0, 4)) .. reply(map {} .. "toolong") ..
  kreq(READ, 0, read_in(1, 0, 4)) .. rec(2, "\0\x01" .. map {}) ..
  reply(map {}, 0xf0) .. reply(map {}, 0xff) ..
  kreq(GETATTR, 0) .. reply("\xa1\x64attr\x5b\xff\xff\xff\xff\xff\xff\xff\xff") ..
  kreq(READDIR, 0, read_in(0, 0, 4096)) .. reply(map {
    "entries", array { array { text "..", attr(DIR) }, array { text "a/b", attr(FILE) } },
    "eof", F }) ..
  kreq(READDIR, 0, read_in(0, 0, 24)) .. reply(map { "entries", array {}, "eof", T }) ..
  kreq(READLINK, 0) .. reply(map { "target", text "a\0b" }) ..
  kreq(OPEN, 0, string.pack("<I4I4", 0, 0)) .. reply(map { "fh", nint(-1) }) ..
  kreq(CREATE, 0, string.pack("<I4I4I4I4", 2, FILE, 18, 0) .. "n\0") ..
  reply(map { "fh", uint(3), "attr", map { "mode", uint(0) } }) .. reply(map {}))
write("fs_reply_fuzz/two_mounts", "\3" ..
  kreq(LOOKUP, 0, "a\0", 1) .. kreq(LOOKUP, 0, "b\0") ..
  reply(map { "attr", attr(DIR) }) .. reply(map { "attr", attr(FILE) }) ..
  kreq(LOOKUP, 1, "c\0", 1) .. kreq(READ, 0, read_in(1, 0, 10)) .. rec(4, "") ..
  kreq(GETATTR, 0) .. rec(5, "") .. kreq(GETATTR, 0, "", 1) .. reply(map { "attr", attr(DIR) }))
write("fs_reply_fuzz/built", "\0" ..
  kreq(LOOKUP, 0, "a\0") .. rec(3, "\0\0\x03\1" .. string.rep("\7", 10)) ..
  kreq(READDIRPLUS, 0, read_in(0, 0, 8192)) .. rec(3, "\0\0\5" .. string.rep("\3\65\66\67\0\0", 5) .. "\1") ..
  kreq(LOOKUP, 1, "x\0") .. rec(3, "\0\2\0") ..
  kreq(CREATE, 1, string.pack("<I4I4I4I4", 2, FILE, 18, 0) .. "n\0") .. rec(3, "\0\3\0\9\0\0\0\0\0\9\0\0\1") ..
  kreq(READ, 0, read_in(1, 0, 100)) .. rec(3, "\0\0\0\0\50") ..
  kreq(WRITE, 0, read_in(1, 0, 4) .. "abcd") .. rec(3, "\0\0\0\0\0\4"))
write("fs_reply_fuzz/unlinked_open", "\0" ..
  kreq(LOOKUP, 0, "a\0") .. reply(map { "attr", attr(FILE, 5) }) ..
  kreq(OPEN, 1, string.pack("<I4I4", 2, 0)) .. reply(map { "fh", uint(5) }) ..
  kreq(UNLINK, 0, "a\0") .. reply(map {}) ..
  kreq(GETATTR, 1) .. reply(map { "attr", attr(FILE, 5) }) ..
  kreq(4, 1, string.pack("<I4I4I8I8I8I8I8I8I4I4I4I4I4I4I4I4", 8, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)) ..
  reply(map { "attr", attr(FILE, 3) }) ..
  kreq(LOOKUP, 0, "x\0") .. reply(map { "attr", attr(DIR) }) ..
  kreq(LOOKUP, 0, "y\0") .. reply(map { "attr", attr(FILE) }) ..
  kreq(RENAME2, 0, string.pack("<I8I4I4", 1, 2, 0) .. "x\0y\0") .. reply(map {}) ..
  kreq(RELEASE, 1, string.pack("<I8I4I4I8", 5, 2, 0, 0)) .. reply(map {}))
write("fs_reply_fuzz/big_tables", "\x0c" ..
  kreq(LOOKUP, 8, string.rep("e", 255) .. "\0") .. kreq(LOOKUP, 9, string.rep("e", 255) .. "\0") ..
  reply(map { "err", text "ENOENT" }) ..
  kreq(LOOKUP, 15, "e\0") .. reply(map { "attr", attr(FILE) }) ..
  kreq(READDIRPLUS, 0, read_in(0, 0, 65536)) .. reply(map { "entries", array {
    array { text "n5", attr(FILE) }, array { text "new", attr(DIR) } }, "eof", T }))
