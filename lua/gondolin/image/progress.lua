-- image/progress.lua - what an image build shows while it runs.
--
-- On a terminal: one line redrawn in place, "[2/5] step  [#####-----]  48%
-- detail". Elsewhere (CI logs, pipes): a plain line per step and per
-- sub-phase, nothing redrawn. quiet = true shows nothing.
local uv = require "luv"

local M = {}

local Progress = {}
Progress.__index = Progress

local BAR = 24
local REDRAW_NS = 100 * 1000 * 1000

--- opts: title, out (a file, default io.stderr), tty (default: is out's
-- descriptor a terminal), quiet.
function M.new(opts)
  opts = opts or {}
  local out = opts.out or io.stderr
  local tty = opts.tty
  if tty == nil then tty = out == io.stderr and uv.guess_handle(2) == "tty" end
  return setmetatable({ title = opts.title or "image", out = out, tty = tty, quiet = opts.quiet,
                        step_i = 0, step_n = 0, frac = 0, last_draw = 0, lines = {} }, Progress)
end

function Progress:_emit(s)
  if self.quiet then return end
  self.out:write(s)
  self.out:flush()
end

function Progress:_draw(force)
  if not self.tty then return end
  local now = uv.hrtime()
  if not force and now - self.last_draw < REDRAW_NS then return end
  self.last_draw = now
  local filled = math.floor(self.frac * BAR + 0.5)
  local detail = self.detail and ("  " .. self.detail) or ""
  self:_emit(("\r\27[K[%d/%d] %s  [%s%s] %3d%%%s"):format(self.step_i, self.step_n, self.text,
    string.rep("#", filled), string.rep("-", BAR - filled), math.floor(self.frac * 100), detail:sub(1, 60)))
end

--- Begin step i of n.
function Progress:step(i, n, text)
  if self.tty and self.step_i > 0 then self:_emit("\n") end
  self.step_i, self.step_n, self.text, self.frac, self.detail = i, n, text, 0, nil
  self.lines[#self.lines + 1] = ("[%d/%d] %s"):format(i, n, text)
  if self.tty then self:_draw(true)
  else self:_emit(("gondolin: image %s: [%d/%d] %s\n"):format(self.title, i, n, text)) end
end

--- Within the step: fraction done (0..1) and what is going on. A plain
-- line is printed only when the detail text changes.
function Progress:update(frac, detail)
  self.frac = math.max(self.frac, math.min(1, frac or self.frac))
  local changed = detail and detail ~= self.detail
  if detail then self.detail = detail end
  if self.tty then self:_draw(changed)
  elseif changed then self:_emit(("gondolin: image %s:   %s\n"):format(self.title, detail)) end
end

--- The end: the final line; failed leaves the bar where it stopped.
function Progress:finish(text, failed)
  if self.tty and self.step_i > 0 then
    if not failed then self.frac = 1 end
    self:_draw(true)
    self:_emit("\n")
  end
  if text then self:_emit(("gondolin: image %s: %s\n"):format(self.title, text)) end
end

return M
