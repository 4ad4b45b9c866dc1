// Package bench holds the project's end-to-end benchmarks: one command
// round trip through the in-process broker (roundtrip_test.go) and the
// cost of the edk inverter compared with a bare paho device
// (cost_test.go, baseline/). It has no API; the figures are recorded in
// BENCHMARKS.md at the repository root.
package bench
