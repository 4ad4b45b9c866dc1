-- edk prelude: runs once in every blueprint's Lua state, before the
-- blueprint. It removes what a blueprint may not use on this host, adds
-- the libraries Enapter's runtime ships (json, inspect, the enapter-ucm
-- rock) and answers UCM-only modules with a clear error.

local edk = __edk
__edk = nil
local module_dir = __edk_module_dir
__edk_module_dir = nil
local api = __edk_api
__edk_api = nil

-- No file, process or native-code access from scripts.
io = nil
package.loaded.io = nil
debug = nil
package.loaded.debug = nil
dofile = nil
loadfile = nil
for _, name in ipairs({ 'execute', 'exit', 'remove', 'rename', 'tmpname', 'getenv', 'setlocale' }) do
  os[name] = nil
end
package.loadlib = nil
package.cpath = ''
package.path = module_dir .. '/?.lua;' .. module_dir .. '/?/init.lua'
package.searchers = { package.searchers[1], package.searchers[2] }
local raw_load = load
load = function(chunk, name, _, env)
  return raw_load(chunk, name, 't', env)
end

-- json, also as require('json')
json = {
  encode = function(v)
    local s, err = edk.json_encode(v)
    if s == nil then error(err, 2) end
    return s
  end,
  decode = function(s)
    return edk.json_decode(s)
  end,
}
package.preload['json'] = function() return json end

-- inspect(value): a readable rendering for logs.
local function is_ident(k)
  return type(k) == 'string' and k:match('^[%a_][%w_]*$') ~= nil
end
local function render(v, depth, seen)
  local t = type(v)
  if t == 'string' then
    return string.format('%q', v)
  elseif t ~= 'table' then
    return tostring(v)
  end
  if seen[v] then return '<cycle>' end
  if depth > 10 then return '{...}' end
  seen[v] = true
  local parts, n = {}, #v
  for i = 1, n do
    parts[#parts + 1] = render(v[i], depth + 1, seen)
  end
  local keys = {}
  for k in pairs(v) do
    if not (math.type(k) == 'integer' and k >= 1 and k <= n) then
      keys[#keys + 1] = k
    end
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    local key = is_ident(k) and k or ('[' .. render(k, depth + 1, seen) .. ']')
    parts[#parts + 1] = key .. ' = ' .. render(v[k], depth + 1, seen)
  end
  seen[v] = nil
  if #parts == 0 then return '{}' end
  return '{ ' .. table.concat(parts, ', ') .. ' }'
end
inspect = setmetatable({ inspect = function(v) return render(v, 0, {}) end }, {
  __call = function(_, v) return render(v, 0, {}) end,
})
package.preload['inspect'] = function() return inspect end

-- enapter.ucm.config: the enapter-ucm rock's v1 configuration helper,
-- written for edk (same behaviour: options kept in storage, the
-- write_configuration / read_configuration commands registered).
package.preload['enapter.ucm.config'] = function()
  local config = {}
  local function storage_err(code)
    if api == 3 then return code end
    local msg = storage.err_to_str(code)
    if msg == '' then return nil end
    return msg
  end
  function config.init(options, callbacks)
    assert(type(options) == 'table' and next(options) ~= nil, 'at least one config option should be provided')
    assert(not config.initialized, 'config can be initialized only once')
    for name, params in pairs(options) do
      assert(#name <= 15, 'invalid option name `' .. name .. '`: longer than 15 characters')
      local t = params.type
      assert(t == 'string' or t == 'number' or t == 'boolean',
        'type of `' .. name .. '` option should be either string or number or boolean')
    end
    enapter.register_command_handler('write_configuration', function(ctx, args)
      local cb_args = {}
      for name, params in pairs(options) do
        if params.required then assert(args[name] ~= nil, '`' .. name .. '` argument required') end
        cb_args[name] = args[name]
        if cb_args[name] == nil then cb_args[name] = params.default end
      end
      if callbacks and callbacks.before_write then
        local err = callbacks.before_write(cb_args)
        if err then ctx.error('before handler failed: ' .. err) end
      end
      for name in pairs(options) do
        local err = config.write(name, args[name])
        if err then ctx.error('cannot write `' .. name .. '`: ' .. err) end
      end
      if callbacks and callbacks.after_write then
        local err = callbacks.after_write(cb_args)
        if err then ctx.error('after handler failed: ' .. err) end
      end
    end)
    enapter.register_command_handler('read_configuration', function(ctx)
      local values, err = config.read_all()
      if err then ctx.error(err) end
      return values
    end)
    config.options = options
    config.initialized = true
  end
  function config.is_all_options_set(args)
    for name in pairs(config.options) do
      if args[name] == nil then return false end
    end
    return true
  end
  function config.read_all()
    local result = {}
    for name in pairs(config.options) do
      local value, err = config.read(name)
      if err then return nil, 'cannot read `' .. name .. '`: ' .. err end
      result[name] = value
    end
    return result, nil
  end
  function config.read(name)
    local params = config.options[name]
    assert(params, 'undeclared config option: `' .. name .. '`, declare with config.init')
    local value, code = storage.read(name)
    local err = storage_err(code)
    if err and err ~= 'NotFound' then return nil, 'error reading from storage: ' .. err end
    if value == nil then return params.default, nil end
    if params.type == 'number' then
      return tonumber(value), nil
    elseif params.type == 'boolean' then
      if value == 'true' then return true, nil elseif value == 'false' then return false, nil end
      return nil, nil
    end
    return value, nil
  end
  function config.write(name, value)
    local code
    if value == nil then
      code = storage.remove(name)
    else
      code = storage.write(name, tostring(value))
    end
    local err = storage_err(code)
    if err and err ~= 'NotFound' then return 'error writing to storage: ' .. err end
  end
  return config
end

-- UCM hardware that a Linux host does not have: every function answers
-- with an error (v3: nil, message; v1: an error code) instead of failing.
local function unavailable(module)
  local msg = module .. ' is not available on this host: edk runs blueprints without UCM hardware modules'
  return setmetatable({}, {
    __index = function(_, fn)
      if fn == 'err_to_str' then return function() return msg end end
      if fn == 'new' then return function() return nil, msg end end
      return function()
        if api == 1 then return 5 end
        return nil, msg
      end
    end,
  })
end
for _, m in ipairs({ 'rl6', 'di7', 'ai4', 'ao4', 'relay', 'digitalin', 'digitalout', 'analogin',
  'analogout', 'rs232', 'rs485', 'serial', 'can', 'ucm', 'pwm', 'thermocouple' }) do
  if _G[m] == nil then _G[m] = unavailable(m) end
end
package.loaded['enapter.ucm.generics.rl6'] = nil
