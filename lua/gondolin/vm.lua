-- vm.lua - one micro-VM: QEMU child, its channels, and the exec sessions.
--
-- Lifecycle: new() validates options and boots (unless start = false);
-- start() spawns QEMU and waits for the agent's HELLO; close() asks QEMU to
-- quit over QMP, then kills it. QEMU exiting at any time fails every pending
-- call at once with an error that names the cause and the console tail.
local uv = require "luv"
local core = require "gondolin.core"
local sched = require "gondolin.sched"
local check = require "gondolin.check"
local image = require "gondolin.image"
local qemu = require "gondolin.qemu"
local disk = require "gondolin.disk"
local files = require "gondolin.files"
local checkpoint = require "gondolin.checkpoint"
local exec = require "gondolin.exec"
local policy = require "gondolin.policy"
local ca = require "gondolin.ca"
local vfs = require "gondolin.vfs"
local fs = require "gondolin.fs"
local P = require "gondolin.proto"
local budget = require "gondolin.budget"

local M = {}

local VM = {}
VM.__index = VM

local live = setmetatable({}, { __mode = "k" })   -- every VM not yet closed

local OPTIONS = { "image", "memory", "cpus", "accel", "env", "cwd", "boot_timeout",
                  "append", "start", "qemu", "console", "policy", "rootfs", "disk_size", "checkpoint",
                  "mounts", "vfs_hooks", "vfs_budget", "qemu_user" }
local CONSOLE_TAIL = 16 * 1024
local KVM_PROBE_SECONDS = 5   -- a KVM boot that has not said hello by then is retried under TCG
-- Under TCG, QEMU's emulated AVX and SSSE3 make OpenSSL's vector code slower
-- than its scalar code (ChaCha20 3x, AES-GCM 3x; docs/performance.md), so
-- exec sessions ask OpenSSL to leave them out. First in the env: the
-- image's, the VM's or an exec's own OPENSSL_ia32cap wins.
local TCG_OPENSSL_CAPS = "OPENSSL_ia32cap=~0x1000020000000000:~0x20"
local QUIT_GRACE_SECONDS = 2
local CHECKPOINT_QUIT_SECONDS = 30   -- QEMU flushes the overlay before it exits
local MAX_SESSIONS = 256
local LIMIT_LOG_SECONDS = 10     -- one stderr line per bound per this long
local CLOCK_CHECK_MS = 5000        -- how often the host clock is checked for jumps
local CLOCK_JUMP_NS = 1000000000   -- a jump this large sets the guest's clock again
local next_vm_id = 0      -- vm.id, for audit records

local function validate(opts)
  opts = opts or {}
  if type(opts) ~= "table" then check.fail("vm", "options must be a table") end
  check.known("vm", opts, OPTIONS)
  local o = {}
  o.image = opts.image ~= nil and check.string("vm option 'image'", opts.image) or image.default()
  o.memory = check.memory("vm option 'memory'", opts.memory or 512)
  o.cpus = check.integer("vm option 'cpus'", opts.cpus or 1, 1, 16)
  o.accel = check.oneof("vm option 'accel'", opts.accel or os.getenv "GONDOLIN_ACCEL" or "auto",
    { "auto", "kvm", "tcg" })
  if opts.policy ~= nil and not policy.is(opts.policy) then
    check.fail("vm option 'policy'", "expected a gondolin.policy{...}, got " .. type(opts.policy))
  end
  o.policy = opts.policy
  o.env = check.env("vm option 'env'", opts.env)
  if o.policy then   -- the guest sees secrets only as placeholders
    local env = {}
    for _, e in ipairs(o.policy.env) do env[#env + 1] = e end
    for _, e in ipairs(o.env) do env[#env + 1] = e end
    o.env = env
  end
  if opts.cwd ~= nil then o.cwd = check.string("vm option 'cwd'", opts.cwd) end
  o.boot_timeout = check.number("vm option 'boot_timeout'", opts.boot_timeout or 60, 1, 3600)
  o.append = opts.append ~= nil and check.string("vm option 'append'", opts.append) or nil
  o.start = opts.start ~= false
  o.qemu = opts.qemu ~= nil and check.string("vm option 'qemu'", opts.qemu) or nil
  if type(opts.qemu_user) == "number" then   -- a uid: one per VM keeps VMs apart (docs/security.md)
    o.qemu_user = check.integer("vm option 'qemu_user'", opts.qemu_user, 1, 0xfffffffe)
  elseif opts.qemu_user ~= nil then
    o.qemu_user = check.string("vm option 'qemu_user'", opts.qemu_user)
  end
  o.console = check.oneof("vm option 'console'", opts.console or "ring", { "ring", "stderr" })
  if opts.rootfs ~= nil then o.rootfs = check.oneof("vm option 'rootfs'", opts.rootfs, disk.MODES) end
  if opts.disk_size ~= nil then o.disk_size = disk.parse_size("vm option 'disk_size'", opts.disk_size) end
  o.mounts = vfs.check_mounts(opts.mounts)
  if opts.vfs_hooks ~= nil then
    if #o.mounts == 0 then check.fail("vm option 'vfs_hooks'", "needs 'mounts'") end
    o.vfs_hooks = opts.vfs_hooks
  end
  o.vfs_budget = budget.check("vm option 'vfs_budget'", opts.vfs_budget)
  if opts.checkpoint ~= nil then
    if opts.image ~= nil then
      check.fail("vm option 'image'", "cannot be combined with 'checkpoint' (a checkpoint names its image)")
    end
    local ck = opts.checkpoint
    if type(ck) == "string" then
      local err
      ck, err = checkpoint.load(ck)
      if not ck then error(err, 3) end
    elseif not checkpoint.is(ck) then
      check.fail("vm option 'checkpoint'", "expected a path or a checkpoint, got " .. type(ck))
    end
    o.checkpoint = ck
  end
  return o
end

-- A ring of the last CONSOLE_TAIL bytes of some output.
local function ring()
  return { parts = {}, size = 0 }
end

local function ring_add(r, data)
  r.parts[#r.parts + 1] = data
  r.size = r.size + #data
  while r.size - #r.parts[1] >= CONSOLE_TAIL do
    r.size = r.size - #table.remove(r.parts, 1)
  end
end

local function ring_text(r)
  local s = table.concat(r.parts)
  return s:sub(-CONSOLE_TAIL)
end

local function read_into(fd, r, echo)
  local pipe = uv.new_pipe(false)
  pipe:open(fd)
  pipe:read_start(function(err, data)
    if data then
      ring_add(r, data)
      if echo then io.stderr:write(data) end
    elseif err or not data then
      pipe:read_stop()
    end
  end)
  return pipe
end

--- Create (and by default boot) a VM.
function M.new(opts)
  local o = validate(opts)
  next_vm_id = next_vm_id + 1
  local self = setmetatable({ o = o, sessions = {}, nsessions = 0, next_id = 0, id = next_vm_id,
                              console = ring(), qemu_err = ring(), pings = {},
                              limits = {}, limit_logged = {} }, VM)
  self.fs = fs.new(self)
  live[self] = true
  if o.start then
    local ok, err = self:start()
    if not ok then
      self:close()
      error(err, 2)
    end
  end
  return self
end

-- Human-readable reason QEMU went away, with the console tail.
function VM:_death(code, sig)
  if self.terminated then return self.terminated end
  local why = sig and ("qemu was killed by signal %d"):format(sig)
    or ("qemu exited with status %d"):format(code or -1)
  local err = ring_text(self.qemu_err):gsub("%s+$", "")
  if err ~= "" then why = why .. ": " .. err:match("[^\n]*$") end
  return why
end

function VM:console_tail()
  return ring_text(self.console)
end

function VM:_on_frame(t, id, payload)
  if t == P.HELLO then
    local m = core.cbor_decode(payload)
    if type(m) ~= "table" or m.version ~= P.VERSION then
      self.hello_err = "guest agent speaks an unknown protocol version"
    end
    self.info = type(m) == "table" and m or {}
    if type(m) == "table" and type(m.error) == "string" then
      -- guest text: shown, but bounded and without control bytes
      self.hello_err = "the guest could not use its root disk: " .. m.error:sub(1, 200):gsub("%c", "?")
    end
    sched.fire(self.hello, true)
  elseif t == P.PONG then
    local ev = self.pings[id]
    if ev then self.pings[id] = nil sched.fire(ev, payload) end
  elseif id ~= 0 and self.sessions[id] then
    self.sessions[id]:_on_frame(t, payload)
  elseif t == P.ERROR then
    -- guest text, and a guest can send many: bounded, at most one line a second
    local now = uv.now()
    if not self.error_logged or now - self.error_logged >= 1000 then
      self.error_logged = now
      local m = core.cbor_decode(payload)
      io.stderr:write(("gondolin: guest error on frame %d: %s\n"):format(id,
        type(m) == "table" and (tostring(m.code) .. ": " .. tostring(m.message)):sub(1, 200):gsub("%c", "?")
          or "(malformed)"))
    end
  end
  -- anything else: a late frame of a finished session, dropped
end

function VM:_launch(img, accel)
  -- QEMU's identity and files first: as root it runs as another user, and
  -- opens nothing of ours by name (docs/security.md, "QEMU confinement")
  local id, iderr = qemu.identity(self.o.qemu_user)
  if iderr then return nil, iderr end
  local inherit = qemu.inherit(id)
  local function fail(err) inherit:close() return nil, err end
  local kernel, kerr = inherit:path(img.kernel)
  if not kernel then return fail(kerr) end
  local initrd
  if img.initramfs then
    initrd, kerr = inherit:path(img.initramfs)
    if not initrd then return fail(kerr) end
  end
  local root
  if img.rootfs then
    local err
    root, err = disk.open(img, { mode = self.o.rootfs or "cow", size = self.o.disk_size,
                                 inherit = inherit, owner = id })
    if not root then return fail(err) end
  end
  self.disk = root
  -- the interception CA: its certificate goes to the guest, its key stays here
  local tls_ca, cerr = ca.open()
  if not tls_ca then
    disk.close(root)
    return fail(cerr)
  end
  local ctl_h, ctl_g = core.socketpair()
  local qmp_h, qmp_g = core.socketpair()
  local con_h, con_g = core.socketpair()
  local err_h, err_g = core.socketpair()
  local net_h, net_g = core.socketpair()
  local fs_h, fs_g
  if #self.o.mounts > 0 then
    self.vfs = vfs.server(self.o.mounts, { hooks = self.o.vfs_hooks, budget = self.o.vfs_budget,
                             on_limit = function(name) self:_on_limit(name) end })
    fs_h, fs_g = core.socketpair()
  end
  local argv = qemu.argv { binary = self.qemu_path, accel = accel, memory = self.o.memory,
                           cpus = self.o.cpus, kernel = kernel, initrd = initrd,
                           append = self.o.append, disk = root, ca = ca.cmdline_value(),
                           mounts = self.vfs and self.vfs:cmdline(), fd_args = inherit.args }
  local fds = {
    { qemu.FD.stderr, err_g }, { qemu.FD.control, ctl_g },
    { qemu.FD.qmp, qmp_g }, { qemu.FD.console, con_g }, { qemu.FD.net, net_g },
  }
  if fs_g then fds[#fds + 1] = { qemu.FD.fs, fs_g } end
  table.move(inherit.fds, 1, #inherit.fds, #fds + 1, fds)
  self.exit_ev = sched.event()
  self.hello = sched.event()
  self.dead = nil
  local proc, perr = core.spawn(argv, fds, function(code, sig) self:_on_exit(code, sig) end,
    qemu.confinement { memory = self.o.memory, accel = accel, identity = id,
                       tmpdir = root and root.qemu_tmpdir })
  for _, fd in ipairs { ctl_g, qmp_g, con_g, err_g, net_g, fs_g } do core.close_fd(fd) end
  inherit:close()   -- QEMU holds its own copies now
  if not proc then
    for _, fd in ipairs { ctl_h, qmp_h, con_h, err_h, net_h, fs_h } do core.close_fd(fd) end
    return nil, "gondolin: cannot start " .. argv[1] .. ": " .. perr
  end
  self.proc = proc
  self.channel = core.channel(ctl_h, {
    on_frame = function(t, id, payload) self:_on_frame(t, id, payload) end,
    on_error = function(code) io.stderr:write("gondolin: control channel: ", code, "\n") end,
    on_close = function() end,
  })
  if fs_h then
    local srv = self.vfs
    local function send(t, id, payload)
      local ch = self.fs_channel
      if ch then ch:send(t, id, payload) end
    end
    self.fs_channel = core.channel(fs_h, {
      on_frame = function(t, id, payload) srv:frame(t, id, payload, send) end,
      on_error = function(code) io.stderr:write("gondolin: fs channel: ", code, "\n") end,
      on_close = function() end,
    })
  end
  local pol = self.o.policy
  self.netif = core.netif(net_h, {
    policy = pol and pol._c,
    tls_ca = tls_ca,
    tls_chacha_first = accel == "tcg",   -- emulated AES is the slower (docs/performance.md)
    on_event = pol and pol:wants_events() and function(ev) self:_on_net_event(ev) end or nil,
  })
  self.console_pipe = read_into(con_h, self.console, self.o.console == "stderr")
  self.err_pipe = read_into(err_h, self.qemu_err, false)
  self.qmp = uv.new_pipe(false)
  self.qmp:open(qmp_h)
  self.qmp:read_start(function() end)   -- greeting and replies are not needed
  self.qmp:write('{"execute":"qmp_capabilities"}\n')
  return true
end

function VM:_on_exit(code, sig)
  self.dead = self:_death(code, sig)
  sched.fire(self.exit_ev, code, sig)
  sched.fire(self.hello, false)
  local err = "vm stopped: " .. self.dead
  for _, s in pairs(self.sessions) do s:_abort(err) end
  for id, ev in pairs(self.pings) do self.pings[id] = nil sched.fire(ev, nil, err) end
end

-- One audit record per network decision (see docs/network.md).
function VM:_on_net_event(ev)
  if ev.kind == "limit" then return self:_on_limit(ev.limit, ev) end
  ev.time = policy.now()
  ev.vm = self.id
  local pol = self.o.policy
  if ev.secret then ev.violation = pol:_violation_action(ev.secret) end
  pol:_emit(ev)
  if ev.violation == "terminate" then
    self:_terminate(("terminated by policy: secret %s may not be sent to %s (on_violation = \"terminate\")")
      :format(ev.secret, tostring(ev.host)))
  end
end

-- A per-VM bound refused something (docs/security.md, "Per-VM bounds"):
-- an audit event { kind = "limit", limit = name, vm, time }, and a line on
-- stderr at most once per LIMIT_LOG_SECONDS per bound.
function VM:_on_limit(name, ev)
  ev = ev or { kind = "limit", limit = name }
  ev.time = policy.now()
  ev.vm = self.id
  self.limits[name] = (self.limits[name] or 0) + 1
  local now = uv.now()
  local last = self.limit_logged[name]
  if not last or now - last >= LIMIT_LOG_SECONDS * 1000 then
    self.limit_logged[name] = now
    io.stderr:write(("gondolin: vm %d: per-VM limit %s reached; what hit it was refused\n"):format(self.id, name))
  end
  if self.o.policy then self.o.policy:_emit(ev) end
end

-- Stop the VM now, from inside a loop callback: what its exec calls and
-- every later call on it report is why.
function VM:_terminate(why)
  if self.dead or not self.proc then return end
  self.terminated = why
  self.proc:kill(9)
end

function VM:_teardown()
  for _, k in ipairs { "clock_timer", "channel", "fs_channel", "vfs", "netif", "console_pipe", "err_pipe", "qmp" } do
    local h = self[k]
    if h then
      self[k] = nil
      if h.close then
        if type(h) == "userdata" and h.is_closing then
          if not h:is_closing() then h:close() end
        else
          h:close()
        end
      end
    end
  end
  if self.proc then self.proc:close() self.proc = nil end
  disk.close(self.disk)
end

-- One boot attempt; returns true or nil, err.
function VM:_boot(img, accel, timeout)
  local ok, err = self:_launch(img, accel)
  if not ok then return nil, err end
  local t0 = uv.hrtime()
  local hello = sched.wait(self.hello, timeout)
  if hello and not self.hello_err then
    self.boot_time = (uv.hrtime() - t0) / 1e9
    self:sync_clock()
    self:_watch_clock()
    return true
  end
  local why = self.hello_err or self.dead or ("no hello from the guest agent within %gs"):format(timeout)
  self.hello_err = nil
  self:_teardown()
  local tail = ring_text(self.console):gsub("%s+$", "")
  return nil, ("gondolin: boot failed under %s: %s%s"):format(accel, why,
    tail ~= "" and "\n--- console tail ---\n" .. tail:sub(-4000) or " (console is empty)")
end

--- Boot the VM; returns true or nil, err. Idempotent.
function VM:start()
  if self.running then return true end
  if self.closed then return nil, "gondolin: vm is closed" end
  self.qemu_path = qemu.find(self.o.qemu)
  local img = self.o.checkpoint and checkpoint.image_of(self.o.checkpoint) or image.resolve(self.o.image)
  self.image = img
  if not img.rootfs and (self.o.rootfs or self.o.disk_size) then
    return nil, ("gondolin: vm option '%s': image %s has no root disk")
      :format(self.o.rootfs and "rootfs" or "disk_size", img.name)
  end
  if img.env and #img.env > 0 and not self.image_env then
    -- the image's baked-in env first: the VM's own entries override it
    self.image_env = img.env
    table.move(self.o.env, 1, #self.o.env, #img.env + 1, img.env)
    self.o.env = img.env
  end
  local plan = qemu.plan(self.o.accel)
  local err
  for i, accel in ipairs(plan) do
    local probing = self.o.accel == "auto" and accel == "kvm" and #plan > 1
    local ok
    ok, err = self:_boot(img, accel, probing and KVM_PROBE_SECONDS or self.o.boot_timeout)
    if ok then
      if self.o.accel == "auto" and accel == "kvm" then qemu.save_verdict("kvm") end
      self.accel = accel
      if accel == "tcg" then table.insert(self.o.env, 1, TCG_OPENSSL_CAPS) end
      self.running = true
      return true
    end
    if probing and i < #plan then qemu.save_verdict("tcg") end
  end
  return nil, err
end

function VM:_send(t, id, payload)
  if self.dead then return nil, "vm stopped: " .. self.dead, "stopped" end
  if not self.channel then return nil, "vm is not running", "closed" end
  return self.channel:send(t, id, payload)
end

function VM:_forget(id)
  if self.sessions[id] then
    self.sessions[id] = nil
    self.nsessions = self.nsessions - 1
  end
end

function VM:_new_id()
  repeat
    self.next_id = self.next_id % 0xffffffff + 1
  until not self.sessions[self.next_id] and not self.pings[self.next_id]
  return self.next_id
end

--- Start a process; returns a process handle (see docs/lua-api.md).
function VM:spawn(cmd, opts)
  local argv, o = exec.validate(cmd, opts, self.o)
  if self.closed then check.fail("spawn", "vm is closed") end
  if self.nsessions >= MAX_SESSIONS then
    self:_on_limit("exec_sessions")
    check.fail("spawn", ("more than %d processes at once"):format(MAX_SESSIONS))
  end
  local id = self:_new_id()
  local p = exec.start(self, id, argv, o)
  if not p.done.fired then
    self.sessions[id] = p
    self.nsessions = self.nsessions + 1
  end
  if type(o.stdin) == "string" then
    local function feed()
      if #o.stdin > 0 then p:write(o.stdin) end
      p:close_stdin()
    end
    if sched.current() then sched.spawn(feed) else feed() end
  end
  return p
end

--- Run a command to completion; returns the result, or nil, err.
function VM:exec(cmd, opts)
  local argv, o = exec.validate(cmd, opts, self.o)
  if o.stdout == "pipe" or o.stderr == "pipe" then
    check.fail("exec", "stdout/stderr = \"pipe\" needs vm:spawn (exec collects the output)")
  end
  local p = self:spawn(argv, opts)
  return p:wait()
end

local function wall_ns()
  local s, us = uv.gettimeofday()
  return s * 1000000000 + us * 1000
end

--- Set the guest's wall clock to the host's (done at boot; call it after
-- the host's clock jumped). Returns true or nil, err.
function VM:sync_clock()
  local now = wall_ns()
  self._clock_base = now - uv.hrtime()
  return self:_send(P.CLOCK_SET, 0, core.cbor_encode { ns = now })
end

-- After HELLO the guest keeps its own time. When the host resumes from
-- suspend (the wall clock ran on, the monotonic clock and the guest did
-- not) or its clock is stepped, wall minus monotonic moves: set it again.
function VM:_check_clock()
  local base = wall_ns() - uv.hrtime()
  if self._clock_base and math.abs(base - self._clock_base) > CLOCK_JUMP_NS then
    self:sync_clock()
    return true
  end
  return false
end

function VM:_watch_clock()
  local t = uv.new_timer()
  local weak = setmetatable({ vm = self }, { __mode = "v" })   -- the timer must not keep the VM alive
  t:start(CLOCK_CHECK_MS, CLOCK_CHECK_MS, function()
    local vm = weak.vm
    if not vm then
      if not t:is_closing() then t:close() end
    elseif vm.running then
      vm:_check_clock()
    end
  end)
  t:unref()   -- never what keeps a script alive
  self.clock_timer = t
end

--- Round trip to the agent; returns seconds or nil, err.
function VM:ping(data)
  data = data or ""
  local id = self:_new_id()
  local ev = sched.event()
  self.pings[id] = ev
  local t0 = uv.hrtime()
  local ok, err = self:_send(P.PING, id, data)
  if not ok then self.pings[id] = nil return nil, err end
  local echo, perr = sched.wait(ev)
  if echo ~= data then return nil, perr or "ping: wrong echo" end
  return (uv.hrtime() - t0) / 1e9
end

--- Stop the VM: QMP quit, then SIGKILL. Returns true; a second close does nothing.
function VM:close()
  if self.closed then return true end
  self.closed = true
  live[self] = nil
  if self.proc and not self.dead then
    local waited = false
    if self.qmp and sched.can_wait() then
      self.qmp:write('{"execute":"quit"}\n')
      waited = sched.wait(self.exit_ev, QUIT_GRACE_SECONDS) ~= nil or self.dead ~= nil
    end
    if not waited then self.proc:kill(9) end
  end
  for _, s in pairs(self.sessions) do s:_abort("vm closed") end
  self:_teardown()
  self.running = false
  sched.flush()
  return true
end
VM.__close = VM.close

--- Sync, stop the VM and keep its root disk as a checkpoint at path.
-- Returns the checkpoint, or nil, err; the VM is closed either way once
-- it was stopped.
function VM:checkpoint(path)
  if type(path) ~= "string" or path == "" then check.fail("checkpoint", "expected a file path") end
  if self.closed or not self.running then check.fail("checkpoint", "the vm is not running") end
  local d = self.disk
  if not d or d.mode ~= "cow" then
    check.fail("checkpoint", ("needs a root disk with rootfs = \"cow\" (this vm has %s)")
      :format(d and "rootfs = \"" .. d.mode .. "\"" or "no root disk"))
  end
  if not self.image.build_id then
    check.fail("checkpoint", "needs an image with a build id (from the image store or a built directory)")
  end
  path = checkpoint.absolute(path)
  local dir = path:match("^(.*)/[^/]+$")
  if files.exists(path) then return nil, "gondolin: checkpoint: " .. path .. " exists (remove it first)" end
  if not files.is_dir(dir) or not uv.fs_access(dir, "w") then
    return nil, "gondolin: checkpoint: cannot write into " .. dir
  end
  local r, err = self:exec { "sync" }
  if not r or r.code ~= 0 then
    return nil, "gondolin: checkpoint: sync in the guest failed: " .. tostring(err or r.stderr)
  end
  self.qmp:write('{"execute":"quit"}\n')
  if not self.dead and sched.wait(self.exit_ev, CHECKPOINT_QUIT_SECONDS) == nil and not self.dead then
    self:close()
    return nil, "gondolin: checkpoint: qemu did not stop; no checkpoint was made"
  end
  d.kept = true
  local ck, cerr = checkpoint.create(d.overlay, self.image, path, (path:match("([^/]+)$"):gsub("%.[^.]*$", "")))
  d.kept = ck ~= nil
  self:close()
  return ck, cerr
end

--- Kill every VM still open, at once (process exit paths).
function M.kill_all()
  for vm in pairs(live) do
    live[vm] = nil
    vm.closed = true
    for _, s in pairs(vm.sessions) do s:_abort("vm closed") end
    vm:_teardown()
  end
end

-- Last resort: an unreachable VM must not leave QEMU behind.
function VM:__gc()
  if not self.closed then
    self.closed = true
    if self.proc then self.proc:close() end
  end
end

function VM:__tostring()
  return ("gondolin.vm (%s)"):format(self.closed and "closed" or self.running and self.accel or "stopped")
end

--- QEMU's pid (tests and diagnostics).
function VM:pid()
  return self.proc and self.proc:pid() or nil
end

return M
