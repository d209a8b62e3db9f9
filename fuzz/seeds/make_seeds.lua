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
