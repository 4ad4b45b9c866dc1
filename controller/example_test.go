package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/edk-go/edk/controller"
	"github.com/edk-go/edk/mqttapi"
)

// Run a command on a device and show its progress, as `edk exec` does.
func ExampleClient_Execute() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := controller.Dial(ctx, controller.Config{BrokerURL: "tcp://127.0.0.1:1883"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	resp, err := c.Execute(ctx, "my-hardware-id", "primary",
		controller.Request{Name: "set_power", Arguments: map[string]any{"power": 4700}},
		func(progress mqttapi.CommandResponse) { fmt.Println("…", progress.Message()) })
	if err != nil {
		log.Fatal(err) // no answer in time, or the broker is gone
	}
	if resp.State == mqttapi.StateError {
		log.Fatalf("the device refused: %s", resp.Message())
	}
	fmt.Printf("done: %s\n", resp.Payload)
}

// Print everything a device sends and receives until Ctrl-C, as `edk watch`
// does.
func ExampleClient_Watch() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c, err := controller.Dial(ctx, controller.Config{BrokerURL: "tcp://127.0.0.1:1883"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	err = c.Watch(ctx, "my-hardware-id", "", func(e controller.Event) {
		fmt.Println(controller.FormatEvent(e))
	})
	if err != nil {
		log.Fatal(err)
	}
}

func ExampleFormatEvent() {
	payload := []byte(`{"timestamp":1700000000,"power":4700,"status":"ok","voltage":231.2,"alerts":[]}`)
	tel, _ := mqttapi.DecodeTelemetry(payload)
	topic, _ := mqttapi.ParseTopic("v1/from/my-hardware-id/primary/v1/telemetry")
	fmt.Println(controller.FormatEvent(controller.Event{
		Time:      time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC),
		Topic:     topic,
		Payload:   payload,
		Telemetry: &tel,
	}))

	req := mqttapi.CommandRequest{ID: "ab12", Name: "set_power", Arguments: json.RawMessage(`{"power":4700}`)}
	topic, _ = mqttapi.ParseTopic("v1/to/my-hardware-id/primary/v1/command/requests")
	fmt.Println(controller.FormatEvent(controller.Event{
		Time:    time.Date(2025, 1, 2, 15, 4, 6, 0, time.UTC),
		Topic:   topic,
		Request: &req,
	}))
	// Output:
	// 15:04:05 telemetry  ch=primary power=4700 status="ok" voltage=231.2 alerts=[]
	// 15:04:06 command →  ch=primary set_power id=ab12 {"power":4700}
}
