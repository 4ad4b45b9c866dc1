// Command baseline is the bare paho device that bench/cost_test.go measures
// the edk runtime against: what someone would write in a quick script with
// paho and no framework. It has no logic to speak of — every command request
// is answered "completed", telemetry goes out once a second, properties once
// on connect — so whatever the edk inverter costs beyond it is the price of
// the runtime (and the inverter's own small handler).
//
// It deliberately imports nothing from this module, not even commconfig:
// the comparison is only fair if the baseline carries none of edk's code.
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// config is the part of a v3 communication config a plain-MQTT device needs.
type config struct {
	HardwareID  string `json:"hardware_id"`
	ChannelID   string `json:"channel_id"`
	Host        string `json:"mqtt_host"`
	Port        int    `json:"mqtt_port"`
	Credentials struct {
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"mqtt_credentials"`
}

func main() {
	raw, err := base64.StdEncoding.DecodeString(os.Getenv("ENAPTER_STANDALONE_COMMUNICATION_CONFIG"))
	if err != nil {
		log.Fatalf("decode ENAPTER_STANDALONE_COMMUNICATION_CONFIG: %v", err)
	}
	var cfg config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		log.Fatalf("parse ENAPTER_STANDALONE_COMMUNICATION_CONFIG: %v", err)
	}
	from := "v1/from/" + cfg.HardwareID + "/" + cfg.ChannelID + "/"
	to := "v1/to/" + cfg.HardwareID + "/" + cfg.ChannelID + "/"

	onRequest := func(c mqtt.Client, m mqtt.Message) {
		var req struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(m.Payload(), &req); err != nil {
			log.Printf("bad request: %v", err)
			return
		}
		resp, _ := json.Marshal(map[string]any{"id": req.ID, "state": "completed", "payload": map[string]any{}})
		c.Publish(from+"v1/command/responses", 1, false, resp)
	}

	opts := mqtt.NewClientOptions().
		AddBroker("tcp://" + cfg.Host + ":" + strconv.Itoa(cfg.Port)).
		SetClientID(fmt.Sprintf("baseline_%s_%s", cfg.HardwareID, cfg.ChannelID)).
		SetUsername(cfg.Credentials.Username).
		SetPassword(cfg.Credentials.Password).
		SetOnConnectHandler(func(c mqtt.Client) {
			c.Subscribe(to+"v1/command/requests", 1, onRequest)
			props, _ := json.Marshal(map[string]any{
				"timestamp": time.Now().Unix(), "vendor": "edk", "model": "baseline",
			})
			c.Publish(from+"v1/properties", 0, false, props)
		})
	client := mqtt.NewClient(opts)
	if tok := client.Connect(); tok.Wait() && tok.Error() != nil {
		log.Fatalf("connect: %v", tok.Error())
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			client.Disconnect(250)
			return
		case <-tick.C:
			tel, _ := json.Marshal(map[string]any{
				"timestamp": time.Now().Unix(), "power": 0, "status": "standby",
			})
			client.Publish(from+"v1/telemetry", 0, false, tel)
		}
	}
}
