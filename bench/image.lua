-- bench/image.lua - building the base image from scratch (into a scratch
-- store, so the user's store is untouched) against the floor: mmdebstrap
-- alone installing the same suite and packages into a directory, with the
-- same sources, in the same run. Also prints the image's size.
-- Run: gondolin bench/image.lua [DESCRIPTION.lua]
local uv = require "luv"
local files = require "gondolin.files"
local command = require "gondolin.command"
local description = require "gondolin.image.description"
local build = require "gondolin.image.build"
local store_mod = require "gondolin.image.store"
local disk = require "gondolin.disk"

local path = arg and arg[1] or "examples/images/base.lua"
local desc = description.load(path)
local root = files.scratch("bench", "")
assert(files.mkdir_p(root))

local function seconds(fn)
  local t0 = uv.hrtime()
  fn()
  return (uv.hrtime() - t0) / 1e9
end

local ok, err = pcall(function()
  local plan = build.plan(desc)
  -- the floor: mmdebstrap by itself, same packages, same sources
  local floor = seconds(function()
    assert(files.write_atomic(root .. "/sources.list", table.concat(plan.sources, "\n") .. "\n"))
    local argv = { "mmdebstrap", "--mode=unshare", "--quiet", "--variant=" .. desc.variant,
                   "--include=" .. table.concat(desc.packages, ","), desc.suite, root .. "/floor",
                   root .. "/sources.list" }
    assert(command.check(argv, { env = { "PATH=" .. os.getenv "PATH", "TMPDIR=" .. root } }))
  end)
  files.rm_tree(root .. "/floor")
  local obj
  local ours = seconds(function()
    local how
    obj, how = build.build(desc, { store = store_mod.open(root .. "/store"), quiet = true,
                                   refresh = "bench " .. os.time() })
    assert(obj, how)
  end)
  local rootfs = uv.fs_stat(obj.rootfs)
  local used = 0
  for _, name in ipairs(files.list(obj.dir)) do used = used + uv.fs_stat(obj.dir .. "/" .. name).blocks * 512 end
  local n = 0
  for _ in pairs(obj.manifest.packages) do n = n + 1 end
  print(("image build: %s (%d packages in the image)"):format(desc.name, n))
  print(("  floor (mmdebstrap alone, same packages): %5.1f s"):format(floor))
  print(("  gondolin image build (no cache):         %5.1f s  ratio %.2fx"):format(ours, ours / floor))
  print(("  rootfs.ext4: %s on disk, %s apparent; whole image %s on disk")
    :format(disk.human(rootfs.blocks * 512), disk.human(rootfs.size), disk.human(used)))
end)
files.rm_tree(root)
if not ok then error(err, 0) end
