// Package testutil starts what tests in any package talk to — the embedded
// broker, a real mosquitto, a throwaway PKI, paho test clients — and registers
// their cleanup with the test, so that nothing outlives it. Helpers wait for
// readiness instead of sleeping.
package testutil
