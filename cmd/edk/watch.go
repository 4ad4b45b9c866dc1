package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/edk-go/edk/controller"
)

func runWatch(ctx context.Context, e *env, args []string) error {
	fs := newFlags("watch", "--hardware-id ID [flags]", e.stderr)
	var bf brokerFlags
	bf.register(fs, "")
	asJSON := fs.Bool("json", false, "print one JSON object per message (time, topic, payload)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if bf.hardwareID == "" {
		return usagef("--hardware-id is required")
	}
	client, err := dialController(ctx, e, bf)
	if err != nil {
		return err
	}
	defer client.Close()
	channel := bf.channelID
	if channel == "" {
		channel = "every channel"
	}
	fmt.Fprintf(e.stderr, "watching device %s (%s) on %s; Ctrl-C to stop\n", bf.hardwareID, channel, bf.url)
	return client.Watch(ctx, bf.hardwareID, bf.channelID, func(ev controller.Event) {
		if *asJSON {
			fmt.Fprintf(e.stdout, "%s\n", eventJSON(ev))
			return
		}
		fmt.Fprintln(e.stdout, controller.FormatEvent(ev))
	})
}

func eventJSON(ev controller.Event) []byte {
	out := map[string]any{"time": ev.Time, "topic": ev.Topic.String()}
	if json.Valid(ev.Payload) {
		out["payload"] = json.RawMessage(ev.Payload)
	} else {
		out["payload_text"] = string(ev.Payload)
	}
	if ev.Err != nil {
		out["error"] = ev.Err.Error()
	}
	b, _ := json.Marshal(out)
	return b
}
