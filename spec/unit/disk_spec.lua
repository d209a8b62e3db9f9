-- disk.lua: sizes, virtual sizes and the QEMU arguments of each mode.
local disk = require "gondolin.disk"
local files = require "gondolin.files"
local json = require "gondolin.json"

local MiB = 1024 * 1024

describe("disk sizes", function()
  it("parses suffixed sizes and MiB numbers", function()
    assert.equal(8 * 1024 * MiB, disk.parse_size("d", "8G"))
    assert.equal(8 * 1024 * MiB, disk.parse_size("d", "8GiB"))
    assert.equal(512 * MiB, disk.parse_size("d", "512M"))
    assert.equal(1536 * MiB, disk.parse_size("d", "1.5G"))
    assert.equal(1024 * 1024 * MiB, disk.parse_size("d", "1T"))
    assert.equal(100 * MiB, disk.parse_size("d", 100))
    assert.equal(65 * MiB, disk.parse_size("d", "66000K"))   -- rounded up to whole MiB
  end)

  it("names the option and the accepted forms", function()
    for _, v in ipairs { "8", "8X", "-1G", "G", "1M", 10, "99T", true } do
      local ok, err = pcall(disk.parse_size, "vm option 'disk_size'", v)
      assert.is_false(ok, tostring(v))
      assert.matches("vm option 'disk_size': '.*' is not a disk size %(accepted: \"8G\"", err)
    end
  end)

  it("reads the virtual size of raw and qcow2 files", function()
    local raw = os.tmpname()
    assert(files.write_atomic(raw, string.rep("x", 4096)))
    assert.equal(4096, disk.virtual_size(raw))
    assert(files.write_atomic(raw, "QFI\xfb" .. string.rep("\0", 20) .. string.pack(">I8", 8 * 1024 * MiB)))
    assert.equal(8 * 1024 * MiB, disk.virtual_size(raw))
    assert(files.write_atomic(raw, "QFI\xfb\0\0"))
    assert.is_nil(disk.virtual_size(raw))
    os.remove(raw)
  end)
end)

describe("disk.open", function()
  local base

  setup(function()
    base = os.tmpname()
    assert(files.write_atomic(base, string.rep("\0", 64 * MiB)))
  end)
  teardown(function() os.remove(base) end)

  local function node_of(d)
    if d.args[1] == "-blockdev" then return json.decode(d.args[2]) end
    return json.decode((d.args[2]:match("file=json:(.*)$"):gsub(",,", ",")))
  end

  it("puts a fresh qcow2 overlay over the base for cow, and removes it on close", function()
    local d = assert(disk.open({ rootfs = base }, { mode = "cow" }))
    assert.equal("gondolin.root=vda", d.cmdline)
    local n = node_of(d)
    assert.equal("qcow2", n.driver)
    assert.equal("root", n["node-name"])
    assert.equal(d.overlay, n.file.filename)
    assert.equal("raw", n.backing.driver)
    assert.is_true(n.backing["read-only"])
    assert.equal(base, n.backing.file.filename)
    assert.equal(64 * MiB, disk.virtual_size(d.overlay))
    local overlay = d.overlay
    disk.close(d)
    assert.is_false(files.exists(overlay))
    disk.close(d)
  end)

  it("attaches the base read-only and tells the guest so", function()
    local d = assert(disk.open({ rootfs = base }, { mode = "readonly" }))
    assert.equal("gondolin.root=vda,ro", d.cmdline)
    assert.is_nil(d.overlay)
    assert.is_true(node_of(d)["read-only"])
  end)

  it("uses QEMU's snapshot mode for memory", function()
    local d = assert(disk.open({ rootfs = base }, { mode = "memory" }))
    assert.equal("-drive", d.args[1])
    assert.matches("snapshot=on", d.args[2])
    assert.is_nil(d.overlay)
    assert.equal(base, node_of(d).file.filename)
  end)

  it("grows with disk_size, never shrinks, and needs a writable disk", function()
    local d = assert(disk.open({ rootfs = base }, { mode = "cow", size = 128 * MiB }))
    assert.equal("gondolin.root=vda,grow", d.cmdline)
    assert.equal(128 * MiB, disk.virtual_size(d.overlay))
    disk.close(d)
    local m = assert(disk.open({ rootfs = base }, { mode = "memory", size = 128 * MiB }))
    assert.matches("snapshot=on", m.args[2])
    assert.equal(128 * MiB, disk.virtual_size(m.overlay))
    disk.close(m)
    local none, err = disk.open({ rootfs = base }, { mode = "cow", size = 32 * MiB })
    assert.is_nil(none)
    assert.matches("32.0 MiB is smaller than the image's root disk %(64.0 MiB%); accepted: 64.0 MiB or more", err)
    none, err = disk.open({ rootfs = base }, { mode = "readonly", size = 128 * MiB })
    assert.is_nil(none)
    assert.matches("needs a writable root disk", err)
  end)

  it("stacks checkpoint layers between the base and the overlay", function()
    local layer = os.tmpname()
    assert(os.execute(("qemu-img create -q -f qcow2 -u -F raw -b %s %s %d"):format(base, layer, 64 * MiB)))
    local d = assert(disk.open({ rootfs = base, layers = { layer } }, { mode = "cow" }))
    local n = node_of(d)
    assert.equal(d.overlay, n.file.filename)
    assert.equal(layer, n.backing.file.filename)
    assert.is_true(n.backing["read-only"])
    assert.equal(base, n.backing.backing.file.filename)
    disk.close(d)
    os.remove(layer)
  end)
end)
