--- gondolin.ca - the per-user CA that signs the leaves the guest sees.
--
-- $XDG_CACHE_HOME/gondolin/ca/{ca.crt,ca.key}: made on first use (EC P-256,
-- key 0600), opened once per process and shared by every VM. The guest gets
-- the certificate on its kernel command line (guest/agent/trust.c), never
-- the key. A CA that exists but is corrupt is an error naming the file;
-- `gondolin ca rotate` replaces it.
local core = require "gondolin.core"
local files = require "gondolin.files"

local M = {}

local opened   -- the process's CA userdata

--- The CA directory.
function M.dir()
  return files.cache_dir() .. "/ca"
end

--- The CA's certificate file.
function M.path()
  return M.dir() .. "/ca.crt"
end

--- The process-wide CA (made on first use); or nil, err.
function M.open()
  if opened then return opened end
  local ok, err = files.mkdir_p(files.cache_dir(), tonumber("700", 8))
  if not ok then return nil, "gondolin: cannot create " .. files.cache_dir() .. ": " .. err end
  local ca, cerr = core.tls_ca(M.dir())
  if not ca then return nil, "gondolin: " .. cerr end
  opened = ca
  return ca
end

--- The CA certificate as PEM; or nil, err.
function M.pem()
  local ca, err = M.open()
  if not ca then return nil, err end
  return ca:pem()
end

--- The certificate's base64 body (its DER), as the guest's command line carries it.
function M.cmdline_value()
  local pem = assert(M.pem())
  return (pem:gsub("%-%-%-%-%-[^\n]*%-%-%-%-%-", ""):gsub("%s", ""))
end

--- Replace the CA by a new one; returns the certificate's path, or nil, err.
-- Running VMs keep the old one until they restart: their netifs hold the
-- old CA userdata, so it is only forgotten here (its __gc frees it), and
-- the next M.open() loads the new one.
function M.rotate()
  local ok, err = files.mkdir_p(files.cache_dir(), tonumber("700", 8))
  if not ok then return nil, "gondolin: cannot create " .. files.cache_dir() .. ": " .. err end
  local done, rerr = core.tls_ca_rotate(M.dir())
  if not done then return nil, "gondolin: " .. rerr end
  opened = nil
  return M.path()
end

return M
