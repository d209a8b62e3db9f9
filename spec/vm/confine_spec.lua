-- QEMU confinement (docs/security.md): seen from the host, in QEMU's own
-- /proc entries: seccomp and no_new_privs, the uid drop when we are root,
-- the rlimits, the descriptors and environment it was given. Two boots: a
-- cow disk with a host mount, and memory = 2G with QEMU's snapshot overlay.
local gondolin = require "gondolin"
local core = require "gondolin.core"
local qemu = require "gondolin.qemu"
local uv = require "luv"
local util = require "helpers.util"

local MiB = 1024 * 1024
local as_root = core.geteuid() == 0

local function proc(vm, what) return assert(util.read_file("/proc/" .. vm:pid() .. "/" .. what)) end

local function field(status, k) return status:match("\n" .. k .. ":\t([^\n]*)") end

-- { [fd] = link target } of QEMU's open descriptors
local function fds(vm)
  local dir, out = "/proc/" .. vm:pid() .. "/fd", {}
  local h = assert(uv.fs_scandir(dir))
  for name in function() return uv.fs_scandir_next(h) end do
    out[tonumber(name)] = uv.fs_readlink(dir .. "/" .. name)
  end
  return out
end

local function limit(limits, name)
  local soft, hard = limits:match(name .. "%s+(%S+)%s+(%S+)")
  return soft, hard
end

describe("QEMU confinement", function()
  local vm, host_dir

  setup(function()
    host_dir = util.tmpdir()
    vm = gondolin.vm { image = "base", memory = "512M", rootfs = "cow",
                       mounts = { ["/work"] = gondolin.vfs.realfs(host_dir) } }
  end)

  teardown(function()
    if vm then vm:close() end
    if host_dir then util.sh("rm -rf '" .. host_dir .. "'") end
  end)

  it("runs QEMU under its seccomp filter with no_new_privs", function()
    local st = proc(vm, "status")
    assert.equal("1", field(st, "NoNewPrivs"))
    assert.equal("2", field(st, "Seccomp"))
    assert.matches("%-sandbox\0" .. qemu.SANDBOX:gsub("%p", "%%%0") .. "\0", proc(vm, "cmdline"))
  end)

  it("drops root: QEMU runs as an unprivileged user with no root group", function()
    if not as_root then return end   -- no drop: QEMU runs as we do
    local st = proc(vm, "status")
    for id in field(st, "Uid"):gmatch("%d+") do assert.is_not.equal("0", id) end
    for id in field(st, "Gid"):gmatch("%d+") do assert.is_not.equal("0", id) end
    for id in (field(st, "Groups") or ""):gmatch("%d+") do assert.is_not.equal("0", id) end
  end)

  it("sets the rlimits, sized from the guest memory", function()
    local l = proc(vm, "limits")
    local as = tostring(512 * MiB + qemu.AS_ALLOWANCE[vm.accel])
    assert.same({ as, as }, { limit(l, "Max address space") })
    assert.same({ "256", "256" }, { limit(l, "Max open files") })
    assert.same({ "0", "0" }, { limit(l, "Max core file size") })
    if as_root then assert.same({ "4096", "4096" }, { limit(l, "Max processes") }) end
  end)

  it("holds only its channels, its files, and descriptors of its own making", function()
    local allowed = { ["/dev/null"] = true, ["/dev/urandom"] = true, [vm.image.kernel] = true,
                      [vm.image.initramfs] = true, [vm.image.rootfs] = true, [vm.disk.overlay] = true }
    local sockets = 0
    for fd, target in pairs(fds(vm)) do
      if target:match("^socket:") then
        sockets = sockets + 1
        assert.is_true(fd >= 2 and fd <= 7, "socket at fd " .. fd)
      else
        assert.is_true(allowed[target] or target:match("^anon_inode:") ~= nil,
          ("fd %d -> %s"):format(fd, target))
      end
    end
    assert.equal(6, sockets)   -- stderr, control, qmp, console, net, fs: no socket of QEMU's own
    local cmd = proc(vm, "cmdline")
    assert.matches("\0%-nodefaults\0", cmd)
    local netdevs = {}
    for v in cmd:gmatch("%-netdev\0([^\0]*)") do netdevs[#netdevs + 1] = v end
    assert.same({ "stream,id=net0,addr.type=fd,addr.str=" .. qemu.FD.net }, netdevs)
    assert.is_nil(cmd:find(vm.image.rootfs, 1, true))   -- files go by descriptor, never by name
  end)

  it("gives QEMU none of the host's environment beyond PATH", function()
    for entry in proc(vm, "environ"):gmatch("[^\0]+") do
      local k = entry:match("^([^=]*)=")
      assert.is_true(k == "PATH" or k == "LD_LIBRARY_PATH" or k == "TMPDIR", entry)
    end
  end)

  it("still execs, writes its root disk and serves a host mount", function()
    local r = vm:exec "echo confined > /etc/confined && sync && cat /etc/confined && echo from-guest > /work/out"
    assert.equal(0, r.code, r.stderr)
    assert.equal("confined\n", r.stdout)
    assert.equal("from-guest\n", util.read_file(host_dir .. "/out"))
  end)

  it("boots with 2 GiB under the limit, the snapshot overlay in a directory QEMU owns", function()
    local big <close> = gondolin.vm { image = "base", memory = "2G", rootfs = "memory" }
    local tmp = big.disk.tmpdir
    local st = assert(uv.fs_stat(tmp))
    if as_root then assert.is_not.equal(0, st.uid) end
    local l = proc(big, "limits")
    assert.equal(tostring(2048 * MiB + qemu.AS_ALLOWANCE[big.accel]), (limit(l, "Max address space")))
    local r = big:exec "echo mem > /etc/mem && sync && cat /etc/mem"
    assert.equal("mem\n", r.stdout, r.stderr)
    big:close()
    assert.is_nil(uv.fs_stat(tmp))   -- removed with the VM
  end)

  it("refuses to run QEMU as root, or as another user without root", function()
    local ok, err = pcall(gondolin.vm, { image = "base", qemu_user = as_root and "root" or "nobody" })
    assert.is_false(ok)
    assert.matches(as_root and "QEMU must not run as root" or "needs a host process running as root", err)
  end)
end)
