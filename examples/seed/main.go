// Command seed is the Go version of the Python example in Enapter's
// "Implementing Device Logic" guide: properties every 30 s, and every
// command answered with {"new_power": 4700}. Unlike that example it
// reconnects, shuts down cleanly and answers each request exactly once.
package main

import (
	"context"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/edk-go/edk/device"
)

func main() {
	d, err := device.FromEnv(device.WithProperties(30*time.Second, func(context.Context) (map[string]any, error) {
		return map[string]any{"vendor": "Enapter", "fw_ver": "1.0.0"}, nil
	}))
	if err != nil {
		log.Fatal(err)
	}
	d.HandleAny(func(context.Context, *device.Command) (any, error) {
		return map[string]any{"new_power": 4700}, nil
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := d.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
