-- image/description.lua - an image description: a Lua file returning a table.
--
--   return {
--     name = "base", tag = "latest",          -- the store ref it becomes
--     suite = "bookworm", variant = "apt",    -- what mmdebstrap starts from
--     packages = { "bash", "curl", ... },
--     files = { ["/etc/motd"] = "hi\n", ["/usr/local/bin/x"] = { src = "x.sh", mode = 493 } },
--     run = { "useradd -m agent" },           -- /bin/sh -c in the rootfs, in order
--     env = { LANG = "C.UTF-8" },             -- defaults of every exec in the image
--     size = "auto",                          -- or "2G": the ext4 filesystem
--     docs = false,                           -- keep /usr/share/{doc,man,locale}
--     mirror = nil,                           -- apt source lines; default: the host's
--   }
--
-- load() runs the file in an empty environment (a description is data, it
-- cannot reach os or io), checks every field and returns the canonical form
-- (defaults filled in, packages sorted, file sources read and hashed) that
-- build ids are computed from. Every mistake is one error naming the field
-- and what is accepted.
local lpeg = require "lpeg"
local files = require "gondolin.files"
local disk = require "gondolin.disk"

local M = {}

M.FIELDS = { "name", "tag", "suite", "variant", "packages", "files", "run", "env", "size",
             "docs", "mirror" }
M.VARIANTS = { "apt", "minbase", "required", "important", "standard" }

local MAX_FILE = 64 * 1024 * 1024
local MAX_LIST = 4096

local R, S, P = lpeg.R, lpeg.S, lpeg.P
local alnum = R("az", "09")
M.ref_part = alnum * (alnum + S "._-") ^ 0 * -1            -- names and tags
local package_pat = alnum * (alnum + S "+.-") ^ 1 * -1     -- Debian policy 5.6.1
local suite_pat = R "az" * (alnum + S "-") ^ 0 * -1
local env_name = (R("az", "AZ") + "_") * (R("az", "AZ", "09") + "_") ^ 0 * -1
local component = (P(1) - "/") ^ 1
local abs_path = (P "/" * component) ^ 1 * -1
local source_line = P "deb" * (P "-src") ^ -1 * S " \t" ^ 1 * P(1) ^ 1

local function fail(where, msg)
  error(("gondolin: image description %s: %s"):format(where, msg), 0)
end

local function sorted(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  table.sort(list)
  return list
end

local function list_of(where, field, v, pat, what)
  if type(v) ~= "table" then fail(where, ("field '%s' must be a list of %s, got %s"):format(field, what, type(v))) end
  local n = #v
  if n > MAX_LIST then fail(where, ("field '%s' has more than %d entries"):format(field, MAX_LIST)) end
  for k in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      fail(where, ("field '%s' must be a list (no keys), found key %s"):format(field, tostring(k)))
    end
  end
  for i, x in ipairs(v) do
    if type(x) ~= "string" or (pat and not pat:match(x)) then
      fail(where, ("field '%s' entry %d: %s is not %s"):format(field, i, tostring(x), what))
    end
  end
  return v
end

local function check_name(where, field, v, default)
  if v == nil then return default end
  if type(v) ~= "string" or #v > 64 or not M.ref_part:match(v) then
    fail(where, ("field '%s' must be lower-case letters, digits and . _ - (up to 64, starting with a letter or digit), got %s")
      :format(field, tostring(v)))
  end
  return v
end

-- Canonical files: { path -> { sha256, mode, source } }, contents staged later.
local function check_files(where, t, dir)
  if t == nil then return {} end
  if type(t) ~= "table" then fail(where, "field 'files' must be a table { [\"/abs/path\"] = content }") end
  local out = {}
  for path, spec in pairs(t) do
    local f = ("files[%q]"):format(tostring(path))
    if type(path) ~= "string" or not abs_path:match(path) or path:find("/%.%.?/") or path:find("/%.%.?$")
      or path:find("//", 1, true) then
      fail(where, ("%s: the key must be an absolute path without . or .. parts"):format(f))
    end
    for _, bad in ipairs { "/proc", "/sys", "/dev", "/run", "/tmp" } do
      if path == bad or path:sub(1, #bad + 1) == bad .. "/" then
        fail(where, ("%s: %s is not part of the image (it is mounted at boot)"):format(f, bad))
      end
    end
    if type(spec) == "string" then spec = { content = spec } end
    if type(spec) ~= "table" then fail(where, f .. ": expected a string, { content = s } or { src = path }") end
    for k in pairs(spec) do
      if k ~= "content" and k ~= "src" and k ~= "mode" then
        fail(where, ("%s: unknown key '%s' (accepted: content, mode, src)"):format(f, tostring(k)))
      end
    end
    if (spec.content == nil) == (spec.src == nil) then fail(where, f .. ": give exactly one of content or src") end
    local mode = spec.mode or 420
    if math.type(mode) ~= "integer" or mode < 0 or mode > 4095 then
      fail(where, f .. ": mode must be an integer 0..4095 (e.g. 493 for 0755)")
    end
    local data, src = spec.content, nil
    if spec.src ~= nil then
      if type(spec.src) ~= "string" then fail(where, f .. ": src must be a path") end
      src = spec.src:sub(1, 1) == "/" and spec.src or dir .. "/" .. spec.src
      local err
      data, err = files.read(src)
      if not data then fail(where, ("%s: cannot read src %s: %s"):format(f, src, tostring(err))) end
    end
    if type(data) ~= "string" then fail(where, f .. ": content must be a string") end
    if #data > MAX_FILE then fail(where, ("%s: larger than %d bytes"):format(f, MAX_FILE)) end
    out[path] = { data = data, mode = mode, sha256 = files.sha256_string(data), src = src }
  end
  return out
end

local function check_env(where, t)
  if t == nil then return {} end
  if type(t) ~= "table" then fail(where, "field 'env' must be a table { NAME = \"value\" }") end
  local out = {}
  for k, v in pairs(t) do
    if type(k) ~= "string" or not env_name:match(k) then
      fail(where, ("env: '%s' is not a variable name (accepted: letters, digits, _)"):format(tostring(k)))
    end
    if type(v) ~= "string" then fail(where, ("env.%s must be a string, got %s"):format(k, type(v))) end
    out[k] = v
  end
  return out
end

local function check_size(where, v)
  if v == nil or v == "auto" then return "auto" end
  local ok, bytes = pcall(disk.parse_size, "size", v)
  if not ok then
    fail(where, ("field 'size': '%s' is not accepted (accepted: \"auto\", or a size like \"2G\", \"800M\")")
      :format(tostring(v)))
  end
  return bytes
end

--- Check a description table t (from file `where`, relative paths from
-- `dir`); returns the canonical description. Raises with one clear error.
function M.check(t, where, dir)
  if type(t) ~= "table" then fail(where, "must return a table, got " .. type(t)) end
  local accepted = {}
  for _, k in ipairs(M.FIELDS) do accepted[k] = true end
  for k in pairs(t) do
    if not accepted[k] then
      local list = {}
      for _, f in ipairs(M.FIELDS) do list[#list + 1] = f end
      table.sort(list)
      fail(where, ("unknown field '%s' (accepted: %s)"):format(tostring(k), table.concat(list, ", ")))
    end
  end
  if t.name == nil then fail(where, "field 'name' is missing") end
  local d = { name = check_name(where, "name", t.name), tag = check_name(where, "tag", t.tag, "latest") }
  if t.suite ~= nil and (type(t.suite) ~= "string" or not suite_pat:match(t.suite)) then
    fail(where, ("field 'suite' must be a Debian suite name like \"bookworm\", got %s"):format(tostring(t.suite)))
  end
  d.suite = t.suite or "bookworm"
  d.variant = t.variant or "apt"
  local ok_variant = false
  for _, v in ipairs(M.VARIANTS) do ok_variant = ok_variant or v == d.variant end
  if not ok_variant then
    fail(where, ("field 'variant': '%s' is not accepted (accepted: %s)"):format(tostring(d.variant),
      table.concat(M.VARIANTS, ", ")))
  end
  local pkgs = {}
  for _, p in ipairs(list_of(where, "packages", t.packages or {}, package_pat, "a Debian package name")) do
    pkgs[p] = true
  end
  d.packages = sorted(pkgs)
  d.run = list_of(where, "run", t.run or {}, nil, "a shell command string")
  d.files = check_files(where, t.files, dir)
  d.env = check_env(where, t.env)
  d.size = check_size(where, t.size)
  if t.docs ~= nil and type(t.docs) ~= "boolean" then fail(where, "field 'docs' must be true or false") end
  d.docs = t.docs == true
  if t.mirror ~= nil then
    if type(t.mirror) == "string" then
      d.mirror = { t.mirror }
    else
      d.mirror = list_of(where, "mirror", t.mirror, nil, "an apt source line")
    end
    for i, line in ipairs(d.mirror) do
      if not source_line:match(line) then
        fail(where, ("field 'mirror' entry %d: '%s' is not an apt source line (\"deb URI SUITE COMPONENTS\")")
          :format(i, line))
      end
    end
  end
  return d
end

--- Load and check a description file. Returns the canonical description.
function M.load(path)
  if path:sub(1, 1) ~= "/" then path = require("luv").cwd() .. "/" .. path:gsub("^%./", "") end
  local chunk, err = loadfile(path, "t", {})
  if not chunk then error("gondolin: image description " .. tostring(err), 0) end
  local ok, t = pcall(chunk)
  if not ok then error(("gondolin: image description %s: %s"):format(path, tostring(t)), 0) end
  local d = M.check(t, path, path:match("^(.*)/[^/]*$") or ".")
  d.source = path
  return d
end

--- The part of d that decides the root filesystem's bytes, as plain data
-- (file contents by hash) for hashing: the same value means the same rootfs.
-- (env is not in it: it lives in the manifest, not on the disk.)
function M.rootfs_inputs(d)
  local fl = {}
  for path, f in pairs(d.files) do fl[path] = { sha256 = f.sha256, mode = f.mode } end
  return { suite = d.suite, variant = d.variant, packages = d.packages, run = d.run, files = fl,
           size = d.size, docs = d.docs, mirror = d.mirror }
end

return M
