-- image/cli.lua - `gondolin image build | list | inspect | rm | prune`.
local lpeg = require "lpeg"
local uv = require "luv"
local json = require "gondolin.json"
local files = require "gondolin.files"
local sched = require "gondolin.sched"
local description = require "gondolin.image.description"
local store_mod = require "gondolin.image.store"
local manifest = require "gondolin.image.manifest"

local M = {}

M.USAGE = [==[
usage: gondolin image build FILE.lua [--refresh] [--tag NAME[:TAG]] [--quiet]
       gondolin image list
       gondolin image inspect IMAGE [--verify]
       gondolin image rm IMAGE...
       gondolin image prune
IMAGE is NAME[:TAG] (tag defaults to latest) or a build id (8+ leading digits).
--refresh bootstraps again with the archive's current packages (a new build id).
]==]

-- Subcommand flags: name -> takes a value?
local FLAGS = {
  build = { refresh = false, tag = true, quiet = false },
  list = {}, prune = {},
  inspect = { verify = false },
  rm = {},
}

local flag_pat = lpeg.P "--" * lpeg.C((lpeg.P(1) - "=") ^ 1) * ("=" * lpeg.C(lpeg.P(1) ^ 0)) ^ -1 * -1

local function say(...)
  io.stdout:write(...)
  io.stdout:write("\n")
end

local function err(msg)
  io.stderr:write("gondolin: ", msg, "\n")
  return 2
end

-- Parse flags and positional words for one subcommand.
local function parse(sub, args, first)
  local allowed, opts, words = FLAGS[sub], {}, {}
  local i = first
  while i <= #args do
    local a = args[i]
    local name, value = flag_pat:match(a)
    if name then
      if allowed[name] == nil then
        local list = {}
        for k in pairs(allowed) do list[#list + 1] = "--" .. k end
        table.sort(list)
        return nil, ("image %s: unknown option '%s' (accepted: %s)"):format(sub, a,
          #list > 0 and table.concat(list, ", ") or "none")
      end
      if allowed[name] and not value then
        i = i + 1
        value = args[i]
        if not value then return nil, ("image %s: --%s needs a value"):format(sub, name) end
      end
      opts[name] = value or true
    else
      words[#words + 1] = a
    end
    i = i + 1
  end
  return opts, words
end

local function disk_usage(dir)
  local total = 0
  for _, name in ipairs(files.list(dir)) do
    local st = uv.fs_stat(dir .. "/" .. name)
    if st then total = total + st.blocks * 512 end
  end
  return total
end

local function human(bytes)
  return require("gondolin.disk").human(bytes)
end

local function build(opts, words)
  if #words ~= 1 then return err("image build needs one description file: gondolin image build FILE.lua") end
  local desc = description.load(words[1])
  if opts.tag then
    local name, tag = store_mod.parse_ref(opts.tag)
    if not name then return err(("--tag expects NAME[:TAG], got '%s'"):format(opts.tag)) end
    desc.name = name
    desc.tag = opts.tag:find(":", 1, true) and tag or desc.tag
  end
  local refresh = opts.refresh and os.date("!%Y-%m-%dT%H:%M:%SZ") or nil
  local obj, how = require("gondolin.image.build").build(desc, { quiet = opts.quiet, refresh = refresh })
  if not obj then
    io.stderr:write(how, "\n")
    return 1
  end
  say(("%s:%s %s (%s, %s)"):format(desc.name, desc.tag, obj.build_id, how, human(disk_usage(obj.dir))))
  return 0
end

local function list()
  local st = store_mod.open()
  local rows, referenced = {}, {}
  for _, r in ipairs(st:refs()) do
    rows[#rows + 1] = { r.name, r.tag, r.id }
    referenced[r.id] = true
  end
  for _, id in ipairs(st:ids()) do
    if not referenced[id] then rows[#rows + 1] = { "<none>", "<none>", id } end
  end
  local out = { { "NAME", "TAG", "BUILD ID", "SIZE", "CREATED" } }
  for _, r in ipairs(rows) do
    local m = st:manifest(r[3])
    out[#out + 1] = { r[1], r[2], r[3], m and human(disk_usage(st:object_dir(r[3]))) or "?",
                      m and tostring(m.created) or "(missing)" }
  end
  local widths = {}
  for _, row in ipairs(out) do
    for c, cell in ipairs(row) do widths[c] = math.max(widths[c] or 0, #cell) end
  end
  for _, row in ipairs(out) do
    local cells = {}
    for c, cell in ipairs(row) do cells[c] = c < #row and cell .. string.rep(" ", widths[c] - #cell) or cell end
    say(table.concat(cells, "  "))
  end
  return 0
end

local function inspect(opts, words)
  if #words ~= 1 then return err("image inspect needs one image: gondolin image inspect NAME[:TAG]|BUILD-ID") end
  local st = store_mod.open()
  local id, how = st:lookup(words[1])
  if not id then return err(("image %s: %s"):format(words[1], how)) end
  local m = assert(st:manifest(id))
  m.dir = st:object_dir(id)
  say(json.encode(m, { indent = "  " }))
  if opts.verify then
    local ok, verr = manifest.verify(m.dir, m)
    if not ok then return err(verr) end
    io.stderr:write("gondolin: every artifact matches the manifest\n")
  end
  return 0
end

local function rm(words)
  if #words == 0 then return err("image rm needs at least one image: gondolin image rm NAME[:TAG]|BUILD-ID ...") end
  local st, rc = store_mod.open(), 0
  for _, sel in ipairs(words) do
    local removed, rerr = st:remove(sel)
    if removed then
      for _, what in ipairs(removed) do say("removed " .. what) end
    else
      rc = err(("image rm %s: %s"):format(sel, rerr))
    end
  end
  return rc
end

local function prune()
  local st = store_mod.open()
  local referenced = {}
  for _, r in ipairs(st:refs()) do referenced[r.id] = true end
  for _, id in ipairs(st:ids()) do
    if not referenced[id] then
      local ok, rerr = files.rm_tree(st:object_dir(id))
      if ok then say("removed " .. id) else return err(rerr) end
    end
  end
  return 0
end

--- `gondolin image ...`: args[1] == "image". Returns the exit status.
function M.main(args)
  local sub = args[2]
  if sub == nil or sub == "--help" or sub == "help" then
    io.stdout:write(M.USAGE)
    return sub == nil and 2 or 0
  end
  if not FLAGS[sub] then
    return err(("unknown image command '%s' (accepted: build, inspect, list, prune, rm)"):format(sub))
  end
  local opts, words = parse(sub, args, 3)
  if not opts then return err(words) end
  return sched.run(function()
    if sub == "build" then return build(opts, words) end
    if #words > 0 and (sub == "list" or sub == "prune") then
      return err(("image %s takes no arguments"):format(sub))
    end
    if sub == "list" then return list() end
    if sub == "inspect" then return inspect(opts, words) end
    if sub == "rm" then return rm(words) end
    return prune()
  end)
end

return M
