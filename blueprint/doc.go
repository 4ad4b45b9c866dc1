// Package blueprint owns an Enapter device blueprint's manifest.yml
// (blueprint_spec device/1.0 and device/3.0): it loads the manifest keeping
// the position of every field, checks the manifest itself, and checks what a
// device sends or receives against it — telemetry, properties, alerts and
// command arguments.
//
// Loading never stops at the first mistake: [Load] and [Parse] return every
// problem as a [Problem] with file, line, column, the field path (for
// example commands.set_power.arguments.power.min) and what to do, wrapped in
// a [*ManifestError]. They also return the manifest as far as it could be
// read, so that a tool can still show it.
//
// The runtime checks ([Manifest.CheckCommand], [Manifest.CheckTelemetry],
// [Manifest.CheckProperties]) are meant to run on every message: they do not
// allocate when the values conform. A Manifest is read-only after loading
// and safe for concurrent use.
//
// The package knows nothing of MQTT: it works on the decoded values
// (map[string]any, as encoding/json produces them, or the Go values a
// device puts in its telemetry).
package blueprint
