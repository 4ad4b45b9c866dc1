// Package luarun runs Enapter's Lua blueprints (the UCM/gateway Lua API,
// v1 and v3) inside edk: it owns the Enapter API a script sees (enapter,
// scheduler, storage, configuration, json, system, inspect, modbus,
// modbustcp, http, the enapter.ucm.config rock) and the one goroutine
// that runs the script. The script's messages go to a Sink (a
// *device.Device in edk run), so reconnects, buffering, manifest checks
// and metrics are the device runtime's.
//
// Everything the script does runs on one goroutine: scheduler jobs,
// command handlers and connection callbacks run one at a time, each call
// under a watchdog (Options.CallTimeout, Enapter's 5 s by default). A Lua
// error in a job is logged and the job keeps its schedule.
//
// It needs the lua package, built with -tags lua; without the tag, New
// returns lua.ErrNotBuilt, which says how to get a build with Lua.
package luarun
