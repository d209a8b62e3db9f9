-- bench/common.lua - what the benchmarks share: a shell in the guest,
-- timing, medians of their rounds, VMs on an edited QEMU command line.
local qemu = require "gondolin.qemu"
local uv = require "luv"

local M = {}

--- The median of a list of numbers, or of field key of a list of tables.
function M.median(list, key)
  local v = {}
  for i, r in ipairs(list) do v[i] = key and r[key] or r end
  table.sort(v)
  local n = #v
  return n % 2 == 1 and v[(n + 1) / 2] or (v[n / 2] + v[n / 2 + 1]) / 2
end

--- Run script under /bin/sh in vm; its stdout. Any failure is an error.
function M.sh(vm, script)
  local r = assert(vm:exec { "/bin/sh", "-c", script })
  assert(r.code == 0, script .. ": " .. r.stdout .. r.stderr)
  return r.stdout
end

--- Seconds fn() takes.
function M.timed(fn)
  local t0 = uv.hrtime()
  fn()
  return (uv.hrtime() - t0) / 1e9
end

--- fn()'s result, with qemu.argv edited by edit(argv, cfg) and the qemu
-- module's fields in `set` (optional) changed while it runs.
function M.patched(edit, fn, set)
  local saved = { argv = qemu.argv }
  for k, v in pairs(set or {}) do saved[k], qemu[k] = qemu[k], v end
  qemu.argv = function(cfg)
    local a = saved.argv(cfg)
    edit(a, cfg)
    return a
  end
  local ok, r = pcall(fn)
  for k, v in pairs(saved) do qemu[k] = v end
  assert(ok, r)
  return r
end

return M
