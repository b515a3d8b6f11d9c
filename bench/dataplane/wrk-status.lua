-- wrk script for the diagnostic rerun after a load saw non-2xx answers: counts status codes
-- per thread and prints them (and the first error body) as STATUS/SAMPLE lines.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body)
  local k = tostring(status)
  statuses[k] = (statuses[k] or 0) + 1
  if status >= 300 and not sample then sample = string.sub(body or "", 1, 200) end
end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for k, v in pairs(s) do io.write("STATUS " .. k .. " " .. v .. "\n") end
    local b = t:get("sample")
    if b then io.write("SAMPLE " .. string.gsub(b, "\n", " ") .. "\n") end
  end
end
