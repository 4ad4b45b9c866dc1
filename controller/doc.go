// Package controller is the cloud side of Enapter's Device MQTT API over one
// MQTT connection: it sends command requests to a device and waits for its
// responses, and it watches a device's traffic. It is what Enapter Cloud or a
// gateway does to a device, so that a person can drive and observe a device
// without either. `edk exec`, `edk watch`, `edk demo` and the hub use it.
//
// A Client is one paho connection (MQTT 3.1.1, clean session, automatic
// reconnect). Dial connects it; Close disconnects it.
//
//   - Execute publishes a command request and waits, bounded by its ctx, for
//     the device's final response, passing each progress ("log") response to
//     a callback on the way. Many executions may run at once on one Client;
//     each waits under its own random request id.
//   - Watch subscribes to everything a device (or one of its channels) sends
//     and receives, decodes each message with package mqttapi and hands it to
//     a callback as an Event; FormatEvent turns an Event into a line of text.
//
// Subscriptions are counted and shared: the responses topic of a
// hardware/channel pair is subscribed once, on first use, and kept; a Watch
// holds its subscriptions while it runs. After a reconnect every live
// subscription is made again, since the session is clean.
package controller
