-- image/sources.lua - the host's apt sources, as lines mmdebstrap takes.
--
-- Images are built from the archive the host itself installs from (nothing
-- else is reachable here), so the default mirror is the host's own apt
-- configuration: /etc/apt/sources.list (one-line format) and
-- /etc/apt/sources.list.d/*.list and *.sources (deb822). Only binary ("deb")
-- entries of the image's suite and its -updates/-security/... companions are
-- kept; third-party entries for other suites are left out.
local lpeg = require "lpeg"
local files = require "gondolin.files"

local M = {}

local P, S, C, Ct, Cg, Cf = lpeg.P, lpeg.S, lpeg.C, lpeg.Ct, lpeg.Cg, lpeg.Cf
local sp = S " \t"
local word = C((P(1) - S " \t\n#") ^ 1)
local options = P "[" * (P(1) - "]") ^ 0 * P "]" * sp ^ 1          -- [signed-by=...]: dropped
-- one-line: deb [opts] URI SUITE COMPONENT...
local one_line = sp ^ 0 * Cg(C(P "deb-src" + P "deb"), "type") * sp ^ 1 * options ^ -1
  * Cg(word, "uri") * sp ^ 1 * Cg(word, "suite") * Cg(Ct((sp ^ 1 * word) ^ 0), "components") * sp ^ 0
  * (P "#" * P(1) ^ 0) ^ -1 * -1
local one_line_entry = Ct(one_line)

-- deb822: "Key: value" fields with continuation lines, paragraphs apart.
local eol = P "\n"
local rest = C((P(1) - eol) ^ 0)
local key = C((lpeg.R("az", "AZ", "09") + S "-_") ^ 1)
local cont = eol * sp ^ 1 * rest / function(s) return s end
local field = Cg(key * sp ^ 0 * ":" * sp ^ 0 * Cf(rest * cont ^ 0, function(a, b) return a .. " " .. b end))
local comment = P "#" * (P(1) - eol) ^ 0
local blank = sp ^ 0 * (comment ^ -1) * eol
local paragraph = Cf(Ct "" * (field * eol ^ -1 + comment * eol) ^ 1, rawset)
local deb822 = Ct((blank ^ 1 + paragraph) ^ 0) * -1

local function split_words(s)
  local out = {}
  for w in (s or ""):gmatch("%S+") do out[#out + 1] = w end
  return out
end

local function wanted(suite, s)
  return s == suite or s:sub(1, #suite + 1) == suite .. "-"
end

--- Entries {type, uri, suite, components} of a one-line sources file's text.
function M.parse_list(text)
  local out = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local e = one_line_entry:match(line)
    if e then out[#out + 1] = e end
  end
  return out
end

--- Entries of a deb822 .sources file's text (nil, err when malformed).
function M.parse_deb822(text)
  local paras = deb822:match(text:gsub("\r", "") .. "\n")
  if not paras then return nil, "malformed deb822 sources" end
  local out = {}
  for _, p in ipairs(paras) do
    if (p.Enabled or "yes"):lower() ~= "no" then
      for _, t in ipairs(split_words(p.Types)) do
        for _, uri in ipairs(split_words(p.URIs)) do
          for _, suite in ipairs(split_words(p.Suites)) do
            out[#out + 1] = { type = t, uri = uri, suite = suite, components = split_words(p.Components) }
          end
        end
      end
    end
  end
  return out
end

--- apt source lines for suite from parsed entries (binary entries only).
function M.lines_for(entries, suite)
  local lines, seen = {}, {}
  for _, e in ipairs(entries) do
    if e.type == "deb" and wanted(suite, e.suite) then
      local line = ("deb %s %s %s"):format(e.uri, e.suite, table.concat(e.components, " ")):gsub("%s+$", "")
      if not seen[line] then
        seen[line] = true
        lines[#lines + 1] = line
      end
    end
  end
  return lines
end

--- The host's apt source lines for suite; nil, err when there are none.
function M.host(suite, root)
  root = root or "/etc/apt"
  local entries = {}
  local function add(list) for _, e in ipairs(list) do entries[#entries + 1] = e end end
  local main = files.read(root .. "/sources.list")
  if main then add(M.parse_list(main)) end
  for _, name in ipairs(files.list(root .. "/sources.list.d")) do
    local text = files.read(root .. "/sources.list.d/" .. name)
    if text and name:match("%.list$") then
      add(M.parse_list(text))
    elseif text and name:match("%.sources$") then
      add(M.parse_deb822(text) or {})
    end
  end
  local lines = M.lines_for(entries, suite)
  if #lines == 0 then
    return nil, ("the host's apt sources (%s) have no entry for suite '%s'; set 'mirror' in the description, "
      .. "e.g. mirror = \"deb http://deb.debian.org/debian %s main\""):format(root, suite, suite)
  end
  return lines
end

return M
