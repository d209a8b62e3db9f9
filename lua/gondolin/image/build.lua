-- image/build.lua - turn an image description into a store object.
--
-- Steps (each shown by image/progress.lua):
--   1 check the packages against the host's apt lists (fast, clear errors)
--   2 mmdebstrap the suite with the packages into a directory tree; a
--     customize hook adds the files, runs the commands, points
--     /etc/resolv.conf at /run (the agent's DHCP client writes it there, so a
--     read-only root works) and lists the installed packages
--   3 mkfs.ext4 -d the tree (no loop mounts, no root beyond mmdebstrap's)
--   4 the kernel and the root-disk initramfs (the agent as /init), linked
--     from their caches
--   5 hash every artifact, write manifest.json, rename into the store
-- Everything happens in a scratch directory that is removed on success, on
-- failure and, if this process dies, by the next one's sweep. A build
-- whose id is already in the store only sets the ref. When only the kernel
-- or the agent changed, the root filesystem of the matching earlier build
-- is reused (hard-linked: objects are immutable), which takes seconds.
--
-- mmdebstrap runs in unshare mode: as root that is a private mount
-- namespace (nothing stays mounted if it is killed), as another user it
-- also maps ids through /etc/subuid.
local uv = require "luv"
local json = require "gondolin.json"
local files = require "gondolin.files"
local command = require "gondolin.command"
local sched = require "gondolin.sched"
local image = require "gondolin.image"
local description = require "gondolin.image.description"
local sources = require "gondolin.image.sources"
local manifest = require "gondolin.image.manifest"
local progress = require "gondolin.image.progress"
local store_mod = require "gondolin.image.store"

local M = {}

local STEPS = 5
local MiB = 1024 * 1024
local EPOCH = 1700000000   -- SOURCE_DATE_EPOCH: file times do not depend on the build date
-- Without docs = true these go after the install (a hook deletes them: dpkg's
-- path-exclude filters do the same but made bootstraps ~40% slower here).
local DOC_TRIM = [[
find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root/usr/share/man" "$root/usr/share/info" "$root/usr/share/lintian" "$root/usr/share/locale"
mkdir -p "$root/usr/share/man" "$root/usr/share/locale"]]

-- mmdebstrap's phases, with the share of the step's time each takes.
local PHASES = {
  { pat = "^I: running apt%-get update", name = "updating the package lists", w = 0.08 },
  { pat = "^I: downloading packages", name = "downloading packages", w = 0.17 },
  { pat = "^I: extracting archives", name = "extracting essential packages", w = 0.08 },
  { pat = "^I: installing essential packages", name = "installing essential packages", w = 0.32, count = true },
  { pat = "^I: installing remaining packages", name = "installing the packages", w = 0.25, count = true },
  { pat = "^I: running %-%-customize%-hook", name = "adding files and running commands", w = 0.06 },
  { pat = "^I: cleaning package lists", name = "cleaning up", w = 0.04 },
}

local function this_file()
  return debug.getinfo(1, "S").source:sub(2)
end

--- The builder's version: a change to how root filesystems are made makes new ones.
function M.builder_version()
  return (assert(files.sha256(this_file())))
end

local function fail(msg) error({ build_error = msg }, 0) end

--- Everything about a build that can be known before building: the
-- inputs, their hashes, the build id. opts: kernel, initramfs (paths;
-- default: gondolin's; kernel = "" stops after the root filesystem keys),
-- sources (default: desc.mirror or the host's), refresh, builder.
function M.plan(desc, opts)
  opts = opts or {}
  local src = opts.sources or desc.mirror
  if not src then
    local err
    src, err = sources.host(desc.suite)
    if not src then fail(err) end
  end
  local p = { desc = desc, sources = src, builder = opts.builder or M.builder_version() }
  p.description_key = manifest.rootfs_key(desc, src, p.builder)
  p.rootfs_key = opts.refresh and files.sha256_string(p.description_key .. "\0" .. opts.refresh)
    or p.description_key
  if opts.kernel == "" then return p end   -- the root filesystem part only
  p.kernel = opts.kernel or image.kernel()
  p.initramfs = opts.initramfs or image.initramfs { rootdisk = true, modules_dir = image.modules_dir_for(p.kernel) }
  p.kernel_sha = assert(files.sha256(p.kernel))
  p.initramfs_sha = assert(files.sha256(p.initramfs))
  p.id = manifest.build_id(p.rootfs_key, desc.env, p.kernel_sha, p.initramfs_sha)
  return p
end

-- Host-side package check: every package must have a candidate in the
-- host's apt lists, when those lists cover the image's sources.
local function precheck_packages(p)
  if p.desc.mirror or #p.desc.packages == 0 then return end
  local argv = { "apt-cache", "policy", "base-files" }
  for _, name in ipairs(p.desc.packages) do argv[#argv + 1] = name end
  local r = command.run(argv, { env = { "LC_ALL=C", "PATH=" .. (os.getenv "PATH" or "/usr/bin:/bin") } })
  if not r or r.code ~= 0 then return end
  local candidate = {}
  local current
  for line in r.stdout:gmatch("[^\n]+") do
    local name = line:match("^(%S+):$")
    if name then current = name:gsub(":amd64$", "")
    elseif current then
      local c = line:match("^%s+Candidate:%s+(%S+)")
      if c then candidate[current] = c end
    end
  end
  if not candidate["base-files"] or candidate["base-files"] == "(none)" then return end   -- no lists here
  for _, name in ipairs(p.desc.packages) do
    if not candidate[name] then
      fail(("package '%s' (field 'packages') is not in the apt sources for %s (%s); accepted: names that "
        .. "'apt-cache policy NAME' shows a candidate for"):format(name, p.desc.suite, table.concat(p.sources, "; ")))
    elseif candidate[name] == "(none)" then
      fail(("package '%s' (field 'packages') has no installation candidate: it is virtual or only "
        .. "referred to; name a package that provides it"):format(name))
    end
  end
end

-- The customize hook: files, commands, resolver, package list.
local function hook_script(p, work)
  local q = files.shell_quote
  local d = p.desc
  local lines = { "#!/bin/sh", "# gondolin image builder: customize hook for " .. d.name, "set -eu", 'root="$1"' }
  local paths = {}
  for path in pairs(d.files) do paths[#paths + 1] = path end
  table.sort(paths)
  assert(files.mkdir_p(work .. "/files"))
  for i, path in ipairs(paths) do
    local f = d.files[path]
    local staged = ("%s/files/%d"):format(work, i)
    assert(files.write_atomic(staged, f.data))
    lines[#lines + 1] = ('mkdir -p "$root"%s && cp %s "$root"%s && chmod %o "$root"%s')
      :format(q(path:match("^(.*)/[^/]*$") .. "/"), q(staged), q(path), f.mode, q(path))
  end
  for i, cmd in ipairs(d.run) do
    lines[#lines + 1] = ("echo 'gondolin-hook: run %d' >&2"):format(i)
    lines[#lines + 1] = ('chroot "$root" /bin/sh -c %s || { echo "gondolin-hook: run %d failed with status $?" >&2; exit 1; }')
      :format(q(cmd), i)
  end
  if not d.docs then lines[#lines + 1] = DOC_TRIM end
  -- after the commands, which may need the build host's resolver
  lines[#lines + 1] = 'rm -f "$root/etc/resolv.conf" && ln -s ../run/resolv.conf "$root/etc/resolv.conf"'
  if not d.files["/etc/hostname"] then lines[#lines + 1] = [[printf 'gondolin\n' > "$root/etc/hostname"]] end
  if not d.files["/etc/hosts"] then
    lines[#lines + 1] = [[printf '127.0.0.1\tlocalhost\n127.0.1.1\tgondolin\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"]]
  end
  -- apt's download dirs belong to _apt, whether or not mmdebstrap could use
  -- apt's sandbox (it cannot when the build directory is private)
  lines[#lines + 1] = [[for d in /var/cache/apt/archives/partial /var/lib/apt/lists/partial; do
  if [ -d "$root$d" ] && chroot "$root" id _apt >/dev/null 2>&1; then chroot "$root" chown _apt:root "$d"; fi
done]]
  lines[#lines + 1] = ([[chroot "$root" dpkg-query -W -f '${Package}\t${Version}\n' > %s]])
    :format(q(work .. "/packages.tsv"))
  local path = work .. "/hook.sh"
  assert(files.write_atomic(path, table.concat(lines, "\n") .. "\n", 493))
  return path
end

-- The most telling error in mmdebstrap's output.
local function explain_failure(p, r)
  local text = r.stderr or ""
  local i, status = text:match("gondolin%-hook: run (%d+) failed with status (%d+)")
  if i then
    return ("command run[%d] (%s) failed in the image with status %s"):format(i, p.desc.run[tonumber(i)], status)
  end
  for _, pat in ipairs { "E: Unable to locate package (%S+)", "E: Package '([^']+)' has no installation candidate",
                         "E: Couldn't find any package by %S+ '([^']+)'" } do
    local name = text:match(pat)
    if name then
      return ("package '%s' (field 'packages') cannot be installed from %s: %s"):format(name,
        table.concat(p.sources, "; "), text:match("(E: [^\n]*" .. name:gsub("%p", "%%%0") .. "[^\n]*)"))
    end
  end
  local unmet = text:match("unmet dependencies:%s*\n%s*([^\n]+)")
  if unmet then return "the packages cannot be installed together: " .. unmet:gsub("%s+", " ") end
  local first = text:match("\n(E: [^\n]+)") or text:match("^(E: [^\n]+)")
  local tail = text:gsub("%s+$", ""):match("([^\n]*\n?[^\n]*\n?[^\n]*)$") or ""
  return ("mmdebstrap failed (%s)%s"):format(r.signal and "signal " .. r.signal or "exit " .. tostring(r.code),
    first and ": " .. first or (tail ~= "" and ":\n" .. tail or ""))
end

-- Progress from mmdebstrap's verbose output, one line at a time.
local function phase_tracker(prog, nrun)
  local done_w, cur, total, count = 0, nil, 0, 0
  return function(stream, line)
    if stream ~= "stderr" then return end
    for _, ph in ipairs(PHASES) do
      if line:match(ph.pat) then
        if cur then done_w = done_w + cur.w end
        cur, total, count = ph, 0, 0
        prog:update(done_w, ph.name)
        return
      end
    end
    if not cur then return end
    local n = line:match("(%d+) newly installed")
    if n then total = total + tonumber(n) return end
    if cur.count and (line:match("^Unpacking ") or line:match("^Setting up ")) and total > 0 then
      count = count + 1
      prog:update(done_w + cur.w * math.min(1, count / (2 * total)))
    end
    local run = line:match("^gondolin%-hook: run (%d+)$")
    if run then prog:update(done_w, ("running command %s of %d"):format(run, nrun)) end
  end
end

--- Can this process bootstrap a root filesystem? true, or false and why.
-- The tree is made and read as root (mmdebstrap's unshare mode is then a
-- private mount namespace); builds as another user are not supported yet.
function M.can_bootstrap()
  local pw = uv.os_get_passwd()
  if pw and pw.uid == 0 then return true end
  return false, "bootstrapping a root filesystem needs root here (mmdebstrap installs packages as root "
    .. "in a chroot). Build it once as root into a store this user can read, e.g. "
    .. "'sudo GONDOLIN_IMAGE_STORE=/var/lib/gondolin/images gondolin image build examples/images/base.lua', "
    .. "then set GONDOLIN_IMAGE_STORE=/var/lib/gondolin/images; or use --image minimal"
end

--- The default rootfs step: mmdebstrap into ctx.work/tree, then mkfs.ext4.
-- ctx: { plan, work, out, progress }; fills ctx.packages.
function M.debian_rootfs(ctx)
  local can, why = M.can_bootstrap()
  if not can then fail(why) end
  local p, work, prog = ctx.plan, ctx.work, ctx.progress
  local d = p.desc
  prog:step(2, STEPS, ("installing Debian %s and %d packages"):format(d.suite, #d.packages))
  local tree = work .. "/tree"
  assert(files.mkdir_p(work .. "/tmp"))
  assert(files.write_atomic(work .. "/sources.list", table.concat(p.sources, "\n") .. "\n"))
  local argv = { "mmdebstrap", "--mode=unshare", "--variant=" .. d.variant, "--verbose",
                 "--customize-hook=sh " .. files.shell_quote(hook_script(p, work)) .. ' "$1"' }
  if #d.packages > 0 then argv[#argv + 1] = "--include=" .. table.concat(d.packages, ",") end
  for _, a in ipairs { d.suite, tree, work .. "/sources.list" } do argv[#argv + 1] = a end
  local env = { "PATH=" .. (os.getenv "PATH" or "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL=C.UTF-8",
                "TMPDIR=" .. work .. "/tmp", "HOME=" .. (os.getenv "HOME" or "/root"),
                "SOURCE_DATE_EPOCH=" .. EPOCH }
  local r, err = command.run(argv, { env = env, on_line = phase_tracker(prog, #d.run) })
  if not r then fail(err .. " (install it with 'apt-get install mmdebstrap', or run 'make deps')") end
  if r.code ~= 0 or r.signal then fail(explain_failure(p, r)) end
  ctx.packages = {}
  for name, ver in (files.read(work .. "/packages.tsv") or ""):gmatch("([^\t\n]+)\t([^\n]*)") do
    ctx.packages[name] = ver
  end
  -- What the bootstrap made today gets one fixed time, so equal inputs give
  -- equal filesystem bytes (file contents already agree).
  local _, cerr = command.check { "find", tree, "-xdev", "-newermt", "@" .. EPOCH, "-exec",
                                  "touch", "--no-dereference", "--date=@" .. EPOCH, "{}", "+" }
  if cerr then fail("setting file times: " .. cerr) end
  M.make_ext4(ctx, tree)
  files.rm_tree(tree)
end

-- du of a tree: used MiB and inode count.
local function tree_usage(tree)
  local mib = command.check { "du", "-s", "-B1M", "--one-file-system", tree }
  local inodes = command.check { "du", "-s", "--inodes", "--one-file-system", tree }
  return tonumber(mib and mib:match("^(%d+)")), tonumber(inodes and inodes:match("^(%d+)"))
end

-- A UUID made of hex digits (from an id), for mkfs's -U and hash_seed.
local function uuid_of(hex)
  return ("%s-%s-4%s-8%s-%s"):format(hex:sub(1, 8), hex:sub(9, 12), hex:sub(14, 16), hex:sub(18, 20), hex:sub(21, 32))
end

--- mkfs.ext4 -d tree into ctx.out, sized by the description.
function M.make_ext4(ctx, tree)
  local d = ctx.plan.desc
  ctx.progress:step(3, STEPS, "writing the ext4 filesystem")
  local used, inodes = tree_usage(tree)
  if not used then fail("cannot measure the root filesystem tree " .. tree) end
  local size_mib = math.ceil(used * 1.25) + 128
  if d.size ~= "auto" then
    size_mib = d.size // MiB
    if size_mib < used + 16 then
      fail(("field 'size': %d MiB is too small for the root filesystem (%d MiB used); accepted: \"auto\" or at least %d MiB")
        :format(size_mib, used, used + 16))
    end
  end
  local uuid = uuid_of(ctx.plan.rootfs_key)
  local _, err = command.check({ "mkfs.ext4", "-q", "-t", "ext4", "-d", tree, "-L", "gondolin-root", "-m", "0",
    "-O", "^has_journal", "-N", tostring(math.floor(inodes * 1.3) + 8192), "-b", "4096", "-U", uuid,
    "-E", "lazy_itable_init=0,hash_seed=" .. uuid, "-F", ctx.out, size_mib .. "M" },
    { env = { "PATH=" .. (os.getenv "PATH" or "") .. ":/usr/sbin:/sbin", "E2FSPROGS_FAKE_TIME=" .. EPOCH } })
  if err then fail("writing the ext4 filesystem: " .. err) end
  M.fix_times(ctx.out, ctx.work)
  ctx.progress:update(1, ("%d MiB, %d MiB used"):format(size_mib, used))
end

--- mkfs -d copies each file's atime and ctime from the build tree, which
-- are the build's own; set them (and the superblock's write time) to EPOCH,
-- so equal inputs give equal bytes.
-- The tree's inodes are the root (2) and 11 up to the used count (mkfs -d
-- allocates them in order).
function M.fix_times(img, work)
  local env = { "PATH=" .. (os.getenv "PATH" or "") .. ":/usr/sbin:/sbin", "E2FSPROGS_FAKE_TIME=" .. EPOCH }
  local head, err = command.check({ "dumpe2fs", "-h", img }, { env = env })
  if not head then fail("reading the new filesystem: " .. err) end
  local count = tonumber(head:match("\nInode count:%s+(%d+)"))
  local free = tonumber(head:match("\nFree inodes:%s+(%d+)"))
  if not count or not free then fail("reading the new filesystem: no inode counts from dumpe2fs") end
  local cmds = {}
  for ino = 2, count - free do
    if ino == 2 or ino >= 11 then
      cmds[#cmds + 1] = ("sif <%d> atime @%d\nsif <%d> ctime @%d"):format(ino, EPOCH, ino, EPOCH)
    end
  end
  cmds[#cmds + 1] = "ssv wtime @" .. EPOCH          -- debugfs's own write, at the fake time
  local script = work .. "/times.debugfs"
  assert(files.write_atomic(script, table.concat(cmds, "\n") .. "\n"))
  local _, derr = command.check({ "debugfs", "-w", "-f", script, img }, { env = env })
  if derr then fail("setting file times: " .. derr) end
end

-- Hard-link src to dest, or copy it across filesystems.
local function link_or_copy(src, dest)
  local ok, _, code = uv.fs_link(src, dest)
  if ok then return true end
  if code ~= "EXDEV" and code ~= "EPERM" then return nil, ("cannot link %s: %s"):format(src, code) end
  local cok, cerr = uv.fs_copyfile(src, dest)
  if not cok then return nil, ("cannot copy %s: %s"):format(src, tostring(cerr)) end
  return true
end

local function artifact(dir, file)
  return { file = file, sha256 = assert(files.sha256(dir .. "/" .. file)), size = files.size(dir .. "/" .. file) }
end

-- Steps 2..5 in the scratch directory; returns the object directory.
local function assemble(p, st, work, prog, opts)
  local obj = work .. "/object"
  assert(files.mkdir_p(obj))
  local ctx = { plan = p, work = work, out = obj .. "/" .. store_mod.ARTIFACTS.rootfs, progress = prog }
  local reuse, from = opts.reuse, nil
  if not reuse and not opts.refresh then reuse, from = st:find_rootfs(p.rootfs_key) end
  if reuse then
    prog:step(2, STEPS, "reusing the root filesystem of build " .. (from or "?"))
    local ok, err = link_or_copy(reuse, ctx.out)
    if not ok then fail(err) end
    local m = from and st:manifest(from)
    ctx.packages = m and m.packages or {}
    prog:step(3, STEPS, "the ext4 filesystem is unchanged")
  else
    ;(opts.rootfs_step or M.debian_rootfs)(ctx)
  end
  prog:step(4, STEPS, "adding the kernel and the initramfs")
  for kind, src in pairs { kernel = p.kernel, initramfs = p.initramfs } do
    local ok, err = link_or_copy(src, obj .. "/" .. store_mod.ARTIFACTS[kind])
    if not ok then fail(err) end
  end
  prog:step(5, STEPS, "hashing and storing")
  local arts = {}
  for kind, file in pairs(store_mod.ARTIFACTS) do arts[kind] = artifact(obj, file) end
  local m = manifest.new { desc = p.desc, id = p.id, rootfs_key = p.rootfs_key, sources = p.sources,
                           builder = p.builder, artifacts = arts, packages = ctx.packages,
                           seconds = (uv.hrtime() - opts.t0) / 1e9, builtin = opts.builtin }
  m.description_key = p.description_key
  m.refresh = opts.refresh
  assert(files.write_atomic(obj .. "/manifest.json", json.encode(m, { indent = "  " }) .. "\n"))
  return obj
end

--- Build desc (from description.load) into the store. opts: store, quiet,
-- tty, refresh (a string: bootstrap afresh, new id), builtin, kernel,
-- initramfs, sources, rootfs_step (tests), reuse (a rootfs path to link).
-- Returns the store object and "cached" or "built", or nil, err.
function M.build(desc, opts)
  opts = opts or {}
  if opts.builtin == nil then opts.builtin = M.is_builtin(desc) end
  local st = opts.store or store_mod.open()
  local prog = opts.progress or progress.new { title = desc.name .. ":" .. desc.tag, quiet = opts.quiet, tty = opts.tty }
  local work, cleanup
  local ok, res = pcall(function()
    prog:step(1, STEPS, "checking the description, the apt sources and the packages")
    if not opts.reuse and not opts.rootfs_step and not M.can_bootstrap() then
      -- fail before building a kernel for an image that cannot be made here
      local rp = M.plan(desc, { sources = opts.sources, refresh = opts.refresh, kernel = "", initramfs = "" })
      if not st:find_rootfs(rp.rootfs_key) then fail(select(2, M.can_bootstrap())) end
    end
    local p = M.plan(desc, opts)
    if st:has(p.id) then
      prog:finish(("cached as build %s"):format(p.id))
      return p
    end
    if not opts.reuse and not opts.rootfs_step then precheck_packages(p) end
    work = files.scratch("build", "")
    assert(files.mkdir_p(work))
    cleanup = files.on_exit(function() files.rm_tree(work) end)
    opts.t0 = uv.hrtime()
    local obj = assemble(p, st, work, prog, opts)
    local iok, ierr = st:import(obj, p.id)
    if not iok then fail(ierr) end
    p.built = true
    prog:finish(("built %s in %.0f s"):format(p.id, (uv.hrtime() - opts.t0) / 1e9))
    return p
  end)
  if work then files.rm_tree(work) files.cancel(cleanup) end
  if not ok then
    local msg = type(res) == "table" and res.build_error or tostring(res)
    prog:finish(nil, true)
    return nil, ("gondolin: image %s:%s: %s"):format(desc.name, desc.tag, msg)
  end
  local rok, rerr = st:set_ref(desc.name, desc.tag, res.id)
  if not rok then return nil, "gondolin: cannot write the image ref: " .. tostring(rerr) end
  local obj, oerr = st:object(res.id)
  if not obj then return nil, oerr end
  return obj, res.built and "built" or "cached"
end

--- The bundled description of a name (guest/images/<name>.lua), or nil.
function M.builtin_path(name)
  local ok, dir = pcall(image.guest_dir)
  local path = ok and dir .. "/images/" .. name .. ".lua"
  return path and files.exists(path) and path or nil
end

--- Is desc the bundled description of its name (the same file contents)?
-- Such builds are kept up to date with gondolin's kernel and agent.
function M.is_builtin(desc)
  local path = M.builtin_path(desc.name)
  return path ~= nil and desc.source ~= nil and files.sha256(path) == files.sha256(desc.source)
end

--- The store object for a bundled image (guest/images/<name>.lua), built
-- when missing and re-assembled when gondolin's own parts (kernel, agent)
-- or the description changed. A ref the user built from another
-- description is left alone. Returns the object, nil and an error, or
-- false when name:tag is not a bundled image.
function M.ensure_builtin(name, tag, st, opts)
  local path = M.builtin_path(name)
  if not path then return false end
  local desc = description.load(path)
  if desc.tag ~= tag then return false end
  st = st or store_mod.open()
  local id = st:ref(desc.name, desc.tag)
  local m = id and st:manifest(id)
  if m and not m.builtin then return st:object(id) end
  -- nothing to compare with here (a store built elsewhere, no kernel built
  -- by this user): what the store has is what boots
  if m and not image.kernel { cached_only = true } then return st:object(id) end
  local popts = { quiet = opts and opts.quiet, refresh = m and m.refresh }
  local ok, p = pcall(M.plan, desc, popts)
  if not ok then return nil, "gondolin: image " .. name .. ": " .. (type(p) == "table" and p.build_error or tostring(p)) end
  if m and m.build_id == p.id then return st:object(id) end
  local bopts = { store = st, builtin = true, quiet = popts.quiet }
  if m and m.description_key == p.description_key then
    -- only the kernel or the agent changed: keep the root filesystem
    bopts.reuse = st:object_dir(id) .. "/" .. store_mod.ARTIFACTS.rootfs
    bopts.refresh = m.refresh
  end
  local obj, err = M.build(desc, bopts)
  if not obj and m then
    -- e.g. a store root built for this user, read-only to it: older than
    -- this gondolin's kernel or agent, but it boots
    io.stderr:write(("gondolin: image %s:%s could not be brought up to date (%s); using build %s as it is\n")
      :format(desc.name, desc.tag, err, id))
    return st:object(id)
  end
  return obj, err
end

return M
