-- examples/workspace.lua - a host directory and a Lua table mounted in the
-- guest; the guest builds in the workspace, the host reads the result.
-- Run with: gondolin examples/workspace.lua
local gondolin = require "gondolin"
local vfs = gondolin.vfs

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir)

local facts = { "the guest sees this table as files", "each read calls Lua" }
local vm <close> = gondolin.vm { mounts = {
  ["/workspace"] = vfs.realfs(dir),
  ["/facts"] = {   -- any table of methods is a provider
    getattr = function(_, path)
      if path == "/" then return { type = "dir" } end
      local i = tonumber(path:match("^/(%d+)$"))
      if i and facts[i] then return { type = "file", size = #facts[i] + 1 } end
    end,
    readdir = function() local n = {} for i in ipairs(facts) do n[i] = tostring(i) end return n end,
    read = function(_, path, off, len) return (facts[tonumber(path:sub(2))] .. "\n"):sub(off + 1, off + len) end,
  },
} }

vm.fs:write("/workspace/main.sh", "#!/bin/sh\necho built at $(date +%s) > out.txt\n")
local r = vm:exec("cd /workspace && chmod +x main.sh && ./main.sh && ls -l && cat /facts/*")
io.write(r.stdout, r.stderr)
io.write("host reads: ", vm.fs:read "/workspace/out.txt")
vm:close()
os.execute("rm -rf " .. dir)
