-- base.lua - gondolin's default image: Debian bookworm with the tools that
-- agents reach for. Build it with `gondolin image build examples/images/base.lua`
-- (gondolin also builds it on first use); see docs/images.md for the fields.
return {
  name = "base",
  tag = "latest",
  suite = "bookworm",
  packages = {
    "bash", "coreutils", "curl", "ca-certificates", "git", "python3", "python3-pip",
    "openssh-client", "procps", "iproute2", "less",
  },
  env = {
    LANG = "C.UTF-8",
    PIP_DISABLE_PIP_VERSION_CHECK = "1",
  },
  files = {
    ["/etc/motd"] = "gondolin base image: Debian bookworm in a throw-away micro-VM.\n",
  },
  run = {
    -- `python` for scripts that expect it
    "ln -sf python3 /usr/bin/python",
  },
  size = "auto",
}
