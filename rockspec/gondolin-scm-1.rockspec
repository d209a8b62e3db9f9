rockspec_format = "3.0"
package = "gondolin"
version = "scm-1"
source = { url = "git+file:///dev/null" }
description = {
  summary = "Run untrusted code in a QEMU micro-VM, with policy in Lua",
  detailed = [[
gondolin boots a small Linux VM under QEMU and runs commands in it. The host
is the guest's only way out. Policy, hooks and filesystem providers are Lua.]],
  license = "MIT",
}
dependencies = { "lua >= 5.4, < 5.5" }
-- luv, lpeg and busted come from Debian (lua-luv, lua-lpeg, lua-busted).
build = {
  type = "make",
  build_target = "all",
  install_target = "install",
  build_variables = { LUA_INC = "$(LUA_INCDIR)" },
  install_variables = {
    LUADIR = "$(LUADIR)", LIBDIR = "$(LIBDIR)", BINDIR = "$(BINDIR)",
  },
}
