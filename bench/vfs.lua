-- bench/vfs.lua - a realfs mount (the guest's FUSE client, FS RPC, the host's
-- C provider) against QEMU's own 9p (`-fsdev local`, security_model=none)
-- and virtio-fs (Debian's virtiofsd: the upper reference), on the same host
-- directory, the same kernel and the same guest image.
-- Run: gondolin bench/vfs.lua [MiB] [files] [rounds]
--
-- Measured in the guest with busybox: a sequential write of MiB (dd from
-- /dev/zero, fsync'd), a sequential read of a host-made file of MiB (guest
-- caches dropped first), `find` over a tree of `files` files in 100
-- directories and `stat` of each of them (xargs, caches dropped first). The
-- three VMs stay up and the measurements alternate between them for
-- `rounds` rounds; medians are compared (the machines are shared and noisy).
package.path = "bench/?.lua;" .. package.path
local gondolin = require "gondolin"
local common = require "common"
local qemu = require "gondolin.qemu"
local vfs = gondolin.vfs
local uv = require "luv"

local sh, patched, median = common.sh, common.patched, common.median

local MIB = tonumber(arg and arg[1]) or 256
local FILES = tonumber(arg and arg[2]) or 10000
local ROUNDS = tonumber(arg and arg[3]) or 3
local VIRTIOFSD = "/usr/lib/qemu/virtiofsd"

local dir = assert(uv.fs_mkdtemp("/tmp/gondolin-bench-vfs-XXXXXX"))
local function host(cmd) assert(os.execute(cmd), cmd) end
host(("dd if=/dev/urandom of=%s/data bs=1M count=%d status=none"):format(dir, MIB))
host(("cd %s && mkdir tree && cd tree && for d in $(seq 1 100); do mkdir d$d; " ..
  "(cd d$d && for f in $(seq 1 %d); do : > f$f; done); done"):format(dir, FILES // 100))
-- 9p is served by QEMU itself, which runs as another user when we are root
-- (docs/security.md, "QEMU confinement"): the directory is that user's.
local qemu_id = qemu.identity()
if qemu_id then host(("chown -R %d:%d %s"):format(qemu_id.uid, qemu_id.gid, dir)) end

local function push(a, ...) for _, v in ipairs { ... } do a[#a + 1] = v end end

local function ours_vm()
  return gondolin.vm { image = "minimal", mounts = { ["/mnt/w"] = vfs.realfs(dir) } }, "/mnt/w"
end

local function ninep_vm()
  local vm = patched(function(a)
    push(a, "-fsdev", "local,id=fs9,path=" .. dir .. ",security_model=none",
         "-device", "virtio-9p-device,fsdev=fs9,mount_tag=w9")
  end, function() return gondolin.vm { image = "minimal" } end)
  sh(vm, "mkdir -p /mnt/9 && mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 w9 /mnt/9")
  return vm, "/mnt/9"
end

local virtiofsd
local function virtiofs_vm()
  local sock = dir .. ".vfsd.sock"
  local h, pid = uv.spawn(VIRTIOFSD, {
    args = { "--socket-path=" .. sock, "-o", "source=" .. dir, "-o", "cache=auto", "-o", "log_level=err" },
    stdio = { nil, 1, 2 },
  }, function() end)
  assert(h, pid)
  virtiofsd = h
  for _ = 1, 100 do
    if uv.fs_stat(sock) then break end
    uv.sleep(50)
  end
  if qemu_id then assert(uv.fs_chown(sock, qemu_id.uid, qemu_id.gid)) end   -- QEMU connects to it
  local vm = patched(function(a, cfg)
    for i, v in ipairs(a) do
      if v:match("^microvm,") then a[i] = v .. ",memory-backend=mem" end
    end
    -- libvhost-user speaks modern virtio only; microvm's virtio-mmio is legacy by default
    push(a, "-global", "virtio-mmio.force-legacy=false",
         "-object", ("memory-backend-memfd,id=mem,size=%dM,share=on"):format(cfg.memory),
         "-chardev", "socket,id=vfsd,path=" .. sock,
         "-device", "vhost-user-fs-device,chardev=vfsd,tag=wfs")
  end, function() return gondolin.vm { image = "minimal" } end)
  sh(vm, "mkdir -p /mnt/fs && mount -t virtiofs wfs /mnt/fs")
  return vm, "/mnt/fs"
end

local function timed(vm, script)
  return common.timed(function() sh(vm, script) end)
end

local DROP = "sync; echo 3 > /proc/sys/vm/drop_caches; "

local function measure(vm, root, tag)
  local r = {}
  local out = ("%s/out-%s"):format(root, tag)
  r.write = MIB / timed(vm, ("dd if=/dev/zero of=%s bs=1M count=%d conv=fsync 2>/dev/null"):format(out, MIB))
  sh(vm, "rm -f " .. out)
  sh(vm, DROP)
  r.read = MIB / timed(vm, ("dd if=%s/data of=/dev/null bs=1M 2>/dev/null"):format(root))
  sh(vm, DROP)
  local t = timed(vm, ("n=$(find %s/tree | wc -l); [ $n -eq %d ]"):format(root, FILES + 101))
  r.find = (FILES + 101) / t
  sh(vm, DROP)
  r.stat = FILES / timed(vm, ("find %s/tree -type f | xargs stat -c %%s > /dev/null"):format(root))
  return r
end

local runs = { ours = {}, ninep = {}, virtiofs = {} }
-- virtiofsd and the scratch directory go on every exit path
local ok, err = pcall(function()
  local ovm <close>, oroot = ours_vm()
  local nvm <close>, nroot = ninep_vm()
  local fvm <close>, froot = virtiofs_vm()
  -- every side reads the same bytes
  local sum = sh(ovm, "sha256sum " .. oroot .. "/data"):match("%x+")
  assert(sh(nvm, "sha256sum " .. nroot .. "/data"):match("%x+") == sum, "9p read differs")
  assert(sh(fvm, "sha256sum " .. froot .. "/data"):match("%x+") == sum, "virtio-fs read differs")
  for i = 1, ROUNDS do
    local o, n, f = measure(ovm, oroot, "ours"), measure(nvm, nroot, "9p"), measure(fvm, froot, "vfs")
    runs.ours[i], runs.ninep[i], runs.virtiofs[i] = o, n, f
    io.stderr:write(("round %d: write %.1f/%.1f/%.1f MiB/s, read %.1f/%.1f/%.1f MiB/s, " ..
      "find %.0f/%.0f/%.0f, stat %.0f/%.0f/%.0f per s (ours/9p/virtio-fs)\n"):format(i,
      o.write, n.write, f.write, o.read, n.read, f.read, o.find, n.find, f.find, o.stat, n.stat, f.stat))
  end
end)
if virtiofsd and not virtiofsd:is_closing() then virtiofsd:kill("sigterm") virtiofsd:close() end
host("rm -rf " .. dir .. " " .. dir .. ".vfsd.sock*")
assert(ok, err)


print(("vfs: %d MiB sequential, %d files; medians of %d alternating rounds (minimal image, TCG)")
  :format(MIB, FILES, ROUNDS))
for _, k in ipairs { { "write", "MiB/s" }, { "read", "MiB/s" }, { "find", "entries/s" }, { "stat", "files/s" } } do
  local o, n, f = median(runs.ours, k[1]), median(runs.ninep, k[1]), median(runs.virtiofs, k[1])
  print(("  %-6s gondolin %8.1f  9p %8.1f  virtio-fs %8.1f %-9s  vs 9p %.2fx (target >= 1.0x)  of virtio-fs %.0f%%")
    :format(k[1], o, n, f, k[2], o / n, 100 * o / f))
end
