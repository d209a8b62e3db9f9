-- The base image and its root disk: tools, modes, disk_size, checkpoints,
-- and that nothing is left behind. The first VM here builds base once per
-- machine (or re-assembles it when the agent or kernel changed).
local gondolin = require "gondolin"
local files = require "gondolin.files"
local store_mod = require "gondolin.image.store"
local checkpoint = require "gondolin.checkpoint"
local util = require "helpers.util"
local uv = require "luv"

local function my_scratch()
  local out, pid = {}, math.tointeger(uv.os_getpid())
  for _, name in ipairs(files.list(files.scratch_dir())) do
    if name:match("^%w+%-" .. pid .. "%-") then out[#out + 1] = name end
  end
  return out
end

local tmpdir = require("helpers.util").tmpdir

describe("base image", function()
  it("is the default image and has bash, curl, git and python3", function()
    local vm <close> = gondolin.vm {}
    assert.equal("base:latest", vm.image.name)
    assert.matches("^%x+$", vm.image.build_id)
    local r = vm:exec [[bash -c 'echo $BASH_VERSION' && curl --version | head -1 && git --version &&
      python3 -c 'import ssl, json; print("py", 6 * 7)' && pip --version && ssh -V 2>&1 && ps -p 1 -o comm= &&
      ip -brief link && less --version | head -1 && apt list --installed 2>/dev/null | wc -l && echo "$LANG"]]
    assert.equal(0, r.code, r.stderr)
    assert.matches("^5%.", r.stdout)
    assert.matches("curl 7", r.stdout)
    assert.matches("git version 2", r.stdout)
    assert.matches("py 42", r.stdout)
    assert.matches("pip 2", r.stdout)
    assert.matches("OpenSSH", r.stdout)
    assert.matches("\ninit\n", r.stdout)         -- the agent, still PID 1 after the switch
    assert.matches("eth0", r.stdout)
    assert.matches("C.UTF%-8\n$", r.stdout)   -- baked into the image
    local n = tonumber(r.stdout:match("\n(%d+)\nC.UTF"))
    assert.is_true(n > 100, "installed packages: " .. tostring(n))
  end)

  it("boots with / on the disk, tmpfs on /tmp, /run and /root, and a resolver", function()
    local vm <close> = gondolin.vm { image = "base" }
    local r = vm:exec [[
      while read -r dev dir type opts rest; do
        case $dir in /|/tmp|/run|/root) echo "$dir $type" ;; esac
      done < /proc/mounts
      cat /etc/resolv.conf; hostname; ls -a /root]]
    assert.equal(0, r.code, r.stderr)
    assert.matches("/ ext4", r.stdout)
    assert.matches("/tmp tmpfs", r.stdout)
    assert.matches("/run tmpfs", r.stdout)
    assert.matches("/root tmpfs", r.stdout)
    assert.matches("nameserver 192%.168%.127%.1", r.stdout)
    assert.matches("gondolin", r.stdout)
    assert.matches("%.bashrc", r.stdout)      -- the image's dotfiles survive the tmpfs
  end)
end)

describe("root disk modes", function()
  it("cow: writes are gone in the next VM and the image is untouched", function()
    local base_sha
    do
      local vm <close> = gondolin.vm { image = "base", rootfs = "cow" }
      base_sha = vm.image.manifest.artifacts.rootfs.sha256
      local r = vm:exec "echo scribble > /etc/scribble && sync && cat /etc/scribble"
      assert.equal("scribble\n", r.stdout)
      assert.equal(1, #my_scratch())            -- its overlay
    end
    assert.same({}, my_scratch())
    local vm <close> = gondolin.vm { image = "base" }
    local r = vm:exec "test -e /etc/scribble; echo $?"
    assert.equal("1\n", r.stdout)
    assert.equal(base_sha, files.sha256(vm.image.rootfs))
  end)

  it("readonly: writes fail with EROFS, tmpfs paths stay writable", function()
    local vm <close> = gondolin.vm { image = "base", rootfs = "readonly" }
    local r = vm:exec "touch /etc/x 2>&1; echo rc=$?; touch /tmp/x /root/x /run/x && echo tmp-ok"
    assert.matches("Read%-only file system", r.stdout)
    assert.matches("rc=1", r.stdout)
    assert.matches("tmp%-ok", r.stdout)
    r = vm:exec { "python3", "-c", "import os, errno\ntry:\n  open('/usr/x', 'w')\nexcept OSError as e:\n  print(errno.errorcode[e.errno])" }
    assert.equal("EROFS\n", r.stdout)
    assert.same({}, my_scratch())                -- no overlay in this mode
  end)

  it("memory: writes work, stay in memory, and reach no file", function()
    do
      local vm <close> = gondolin.vm { image = "base", rootfs = "memory" }
      local r = vm:exec "echo mem > /etc/mem && sync && cat /etc/mem"
      assert.equal("mem\n", r.stdout)
      assert.same({}, my_scratch())
    end
    local vm <close> = gondolin.vm { image = "base", rootfs = "memory" }
    assert.equal("1\n", vm:exec("test -e /etc/mem; echo $?").stdout)
  end)

  it("disk_size grows the disk and its filesystem, and refuses to shrink it", function()
    local vm <close> = gondolin.vm { image = "base", disk_size = "4G" }
    local r = vm:exec { "python3", "-c", "import os; s = os.statvfs('/'); print(s.f_blocks * s.f_frsize // 2**20)" }
    local mib = tonumber(r.stdout)
    assert.is_true(mib > 3800 and mib <= 4096, r.stdout .. r.stderr)
    local ok, err = pcall(gondolin.vm, { image = "base", disk_size = "100M" })
    assert.is_false(ok)
    assert.matches("vm option 'disk_size': 100.0 MiB is smaller than the image's root disk", err)
    ok, err = pcall(gondolin.vm, { image = "base", rootfs = "readonly", disk_size = "8G" })
    assert.is_false(ok)
    assert.matches("needs a writable root disk", err)
    ok, err = pcall(gondolin.vm, { image = "minimal", rootfs = "readonly" })
    assert.is_false(ok)
    assert.matches("image minimal has no root disk", err)
    assert.equal(1, #my_scratch())             -- only the running VM's overlay
  end)
end)

describe("disk checkpoints", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() files.rm_tree(dir) end)

  it("resume twice: both VMs see what was written before the checkpoint", function()
    local path = dir .. "/work.qcow2"
    local vm = gondolin.vm { image = "base" }
    assert.equal(0, vm:exec("mkdir -p /srv/w && echo before > /srv/w/state").code)
    local ck = assert(vm:checkpoint(path))
    assert.equal(vm.image.build_id, ck.build_id)
    assert.equal("work", ck.name)
    assert.equal("base:latest", ck.image)
    assert.has_error(function() vm:exec "true" end)       -- the VM stopped and is closed
    assert.same({}, my_scratch())
    for i = 1, 2 do
      local vm2 <close> = gondolin.checkpoint.load(path):resume {}
      local r = vm2:exec("cat /srv/w/state; echo run" .. i .. " >> /srv/w/state")
      assert.equal("before\n", r.stdout)              -- the other resume's write is not here
    end
    -- a checkpoint of a resumed VM stands alone on the image
    local vm3 = gondolin.vm { checkpoint = path }
    vm3:exec "echo again >> /srv/w/state"
    local ck2 = assert(vm3:checkpoint(dir .. "/second.qcow2"))
    local vm4 <close> = ck2:resume { rootfs = "readonly" }
    assert.equal("before\nagain\n", vm4:exec("cat /srv/w/state").stdout)
    assert.same({}, my_scratch())
  end)

  it("refuses what cannot be checkpointed, before stopping anything", function()
    local vm <close> = gondolin.vm { image = "base", rootfs = "memory" }
    local ok, err = pcall(vm.checkpoint, vm, dir .. "/x.qcow2")
    assert.is_false(ok)
    assert.matches("needs a root disk with rootfs = \"cow\"", err)
    local cow <close> = gondolin.vm { image = "base" }
    assert(files.write_atomic(dir .. "/taken.qcow2", "x"))
    local ck, cerr = cow:checkpoint(dir .. "/taken.qcow2")
    assert.is_nil(ck)
    assert.matches("exists %(remove it first%)", cerr)
    ck, cerr = cow:checkpoint(dir .. "/no/such/dir/x.qcow2")
    assert.is_nil(ck)
    assert.matches("cannot write into", cerr)
    assert.equal(0, cow:exec("true").code)              -- still running
  end)

  it("names the build id when the checkpoint's image is gone", function()
    local path = dir .. "/orphan.qcow2"
    local vm = gondolin.vm { image = "base" }
    local ck = assert(vm:checkpoint(path))
    -- the same disk, pointing at a build that is not in the store
    local data = assert(files.read(path))
    local meta, start = checkpoint.decode_trailer(data)
    meta.build_id = "0123456789abcdef0123456789abcdef"
    assert(files.write_atomic(path, data:sub(1, start - 1) .. checkpoint.encode_trailer(meta)))
    local ck2 = assert(checkpoint.load(path))
    assert.equal(meta.build_id, ck2.build_id)
    local ok, err = pcall(ck2.resume, ck2, {})
    assert.is_false(ok)
    assert.matches("needs image build 0123456789abcdef0123456789abcdef %(base:latest%), which is not in the image store", err)
    assert.is_true(ck:delete())
    assert.is_false(files.exists(path))
  end)
end)

describe("image CLI", function()
  it("lists, inspects and verifies the base image", function()
    local code, out = util.run { "bin/gondolin", "image", "list" }
    assert.equal(0, code)
    assert.matches("NAME%s+TAG%s+BUILD ID%s+SIZE%s+CREATED", out)
    assert.matches("\nbase%s+latest%s+%x+%s+[%d.]+ MiB", out)
    local err
    code, out, err = util.run { "bin/gondolin", "image", "inspect", "base", "--verify" }
    assert.equal(0, code, err)
    assert.matches('"name": "base"', out)
    assert.matches("every artifact matches", err)
  end)

  it("resumes a checkpoint in bash and names bad flags", function()
    local dir = tmpdir()
    local vm = gondolin.vm { image = "base" }
    vm:exec "echo from-the-checkpoint > /srv/note"
    assert(vm:checkpoint(dir .. "/c.qcow2"))
    local rc, out = util.sh("printf 'cat /srv/note\\nexit 3\\n' | bin/gondolin bash --resume " .. dir .. "/c.qcow2")
    assert.equal(3, rc)
    assert.matches("from%-the%-checkpoint", out)
    rc, out = util.sh("bin/gondolin exec --rootfs sideways -- true 2>&1")
    assert.equal(1, rc)
    assert.matches("vm option 'rootfs': 'sideways' is not accepted %(accepted: cow, memory, readonly%)", out)
    rc, out = util.sh("bin/gondolin exec --image base --disk-size 2G -- df -m / 2>&1")
    assert.equal(0, rc, out)
    assert.matches("/dev/vda", out)
    files.rm_tree(dir)
  end)
end)

describe("scratch files", function()
  it("are swept at the next start when a process died with its overlay", function()
    local dir = tmpdir()
    local script = dir .. "/die.lua"
    assert(files.write_atomic(script, [[
      local gondolin = require "gondolin"
      local vm = gondolin.vm { image = "base" }
      io.stdout:write("up\n") io.stdout:flush()
      require("luv").kill(math.tointeger(require("luv").os_getpid()), "sigkill")]]))
    local rc, out = util.sh("sh -c 'bin/gondolin " .. script .. "' 2>&1")
    assert.matches("up", out)
    assert.is_true(rc ~= 0)
    local stale = 0
    for _, name in ipairs(files.list(files.scratch_dir())) do
      if name:match("^overlay%-") then stale = stale + 1 end
    end
    assert.is_true(stale >= 1)
    files.sweep()
    local left = 0
    for _, name in ipairs(files.list(files.scratch_dir())) do
      local pid = name:match("^overlay%-(%d+)%-")
      if pid and not util.alive(pid) then left = left + 1 end
    end
    assert.equal(0, left)
    files.rm_tree(dir)
  end)
end)
