-- gondolin - run untrusted code in a micro-VM, driven from Lua.
require "luv"   -- the C module shares luv's loop; luv must be loaded first
local sched = require "gondolin.sched"

local M = { _VERSION = "gondolin 0.1.0" }

--- Create and boot a VM (see docs/lua-api.md for options).
function M.vm(opts)
  return require("gondolin.vm").new(opts)
end

--- Compile an egress policy (see docs/network.md).
function M.policy(opts)
  return require("gondolin.policy").new(opts)
end

--- Disk checkpoints: gondolin.checkpoint.load(path) -> checkpoint (see docs/lua-api.md).
M.checkpoint = require "gondolin.checkpoint"

--- Filesystem providers for the vm's mounts (see docs/lua-api.md).
M.vfs = require "gondolin.vfs"

M.run = sched.run
M.spawn = sched.spawn
M.sleep = sched.sleep
M.signals = require("gondolin.exec").SIGNALS

return M
