-- image/manifest.lua - build ids and the manifest of a built image.
--
-- Ids are content-derived, from the inputs, so a build can be found in the
-- store before anything is built:
--   rootfs_key = sha256(JSON of: builder version, apt sources, the
--                description's rootfs part with file contents by sha256)
--   build_id   = first 32 hex digits of sha256(JSON of: rootfs_key, env,
--                sha256 of the kernel, sha256 of the initramfs)
-- The JSON encoder sorts keys, so equal inputs give equal bytes and equal
-- ids however the description was written (packages are sorted too). The
-- manifest also records the sha256 of every artifact as built.
local json = require "gondolin.json"
local files = require "gondolin.files"
local description = require "gondolin.image.description"

local M = {}

M.FORMAT = 1

--- Hash of everything that decides the root filesystem.
function M.rootfs_key(desc, sources, builder)
  return files.sha256_string(json.encode {
    format = M.FORMAT, builder = builder, sources = json.array(sources),
    description = description.rootfs_inputs(desc),
  })
end

--- The build id of an image from its parts (hex sha256 digests).
function M.build_id(rootfs_key, env, kernel_sha, initramfs_sha)
  return files.sha256_string(json.encode {
    format = M.FORMAT, rootfs = rootfs_key, env = env or {}, kernel = kernel_sha, initramfs = initramfs_sha,
  }):sub(1, 32)
end

--- The manifest table of a finished build. b: { desc, id, rootfs_key,
-- sources, builder, artifacts = { kind -> { file, sha256, size } },
-- packages = { name -> version }, seconds, builtin }.
function M.new(b)
  local d = b.desc
  local fl = {}
  for path, f in pairs(d.files) do fl[path] = { sha256 = f.sha256, mode = f.mode, src = f.src } end
  return {
    format = M.FORMAT,
    build_id = b.id,
    name = d.name,
    tag = d.tag,
    created = os.date("!%Y-%m-%dT%H:%M:%SZ"),
    source = d.source,
    builtin = b.builtin or false,
    rootfs_key = b.rootfs_key,
    env = d.env,
    inputs = {
      builder = b.builder,
      sources = json.array(b.sources),
      suite = d.suite, variant = d.variant, packages = json.array(d.packages),
      run = json.array(d.run), files = fl, size = d.size, docs = d.docs,
    },
    artifacts = b.artifacts,
    packages = b.packages or {},
    build_seconds = b.seconds,
  }
end

--- Check an object's files against its manifest. Returns true or nil, err.
function M.verify(dir, m)
  for kind, a in pairs(m.artifacts or {}) do
    local digest = files.sha256(dir .. "/" .. a.file)
    if digest ~= a.sha256 then
      return nil, ("%s: %s (%s) does not match its manifest"):format(dir, a.file, kind)
    end
  end
  return true
end

return M
