// Package mqttapi owns the wire protocol of Enapter's Device MQTT API: topic
// names, message types, their JSON encoding and strict decoding.
//
// It does no I/O. Every decoder accepts arbitrary bytes and returns either a
// message or a *DecodeError; none of them panics, whatever the input (each has
// a fuzz target to keep it that way).
//
// Topics have the shape
//
//	v1/from/<hardware_id>/<channel_id>/<suffix>   device → cloud
//	v1/to/<hardware_id>/<channel_id>/<suffix>     cloud → device
//
// where suffix is one of the Kind constants.
package mqttapi
