-- examples/hello.lua - boot a VM, run a few commands, print what happened.
-- Run with: gondolin examples/hello.lua   (or: make run)
local gondolin = require "gondolin"

local vm <close> = gondolin.vm {}
print(("booted in %.2f s under %s (agent %s)"):format(vm.boot_time, vm.accel, vm.info.agent))

local r = vm:exec "uname -a"
io.write("uname: ", r.stdout)

r = vm:exec "seq 1 100 | awk '{ s += $1 } END { print s }' | tr 0-9 a-j"
io.write("pipeline: ", r.stdout)

r = vm:exec({ "/bin/sh", "-c", "echo $GREETING from $(pwd)" }, { env = { GREETING = "hello" }, cwd = "/tmp" })
io.write(r.stdout)

r = vm:exec "ls /nonexistent"
print(("exit code %d, stderr: %s"):format(r.code, r.stderr:gsub("\n$", "")))
