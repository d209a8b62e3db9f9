-- bench/stats.lua - what the benchmarks compute on their rounds.
local M = {}

--- The median of a list of numbers, or of field key of a list of tables.
function M.median(list, key)
  local v = {}
  for i, r in ipairs(list) do v[i] = key and r[key] or r end
  table.sort(v)
  local n = #v
  return n % 2 == 1 and v[(n + 1) / 2] or (v[n / 2] + v[n / 2 + 1]) / 2
end

return M
