package hub

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edk-go/edk/hub/ingest"
)

// ShareGroup is the shared-subscription group of every hub on one
// external broker: the broker hands each device message to one of them.
const ShareGroup = "edk-hub"

// externalBroker is the hub's connection to a broker it does not run.
type externalBroker struct {
	client paho.Client
	addr   string // host:port, for the configs the hub hands out
}

// connectExternal connects to the broker at rawURL (mqtt://, tcp://) and
// feeds device messages to the pipeline: telemetry, properties and logs
// through a shared subscription, so that several hubs split them, and
// command responses through a plain one, so that the hub that sent a
// command sees its answers.
func connectExternal(ctx context.Context, rawURL, username, password string, p *ingest.Pipeline, log *slog.Logger) (*externalBroker, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("--broker %q: want mqtt://host:port", rawURL)
	}
	switch u.Scheme {
	case "mqtt", "tcp":
	default:
		return nil, fmt.Errorf("--broker %q: only mqtt:// (plain TCP) is supported for an external broker", rawURL)
	}
	// One filter per kind, so that no message matches both a shared and
	// the plain subscription (a broker would deliver it twice).
	subs := map[string]byte{"v1/from/+/+/v1/command/responses": 1}
	for _, kind := range []string{"v1/telemetry", "v1/properties", "v1/register", "v3/logs"} {
		subs["$share/"+ShareGroup+"/v1/from/+/+/"+kind] = 1
	}
	ingestMessage := func(_ paho.Client, m paho.Message) { p.Ingest(m.Topic(), m.Payload()) }
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + u.Host).
		SetClientID("edk-hub-" + randomHexID()).
		SetUsername(username).SetPassword(password).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(30 * time.Second).
		SetOrderMatters(true). // Ingest only queues
		SetDefaultPublishHandler(ingestMessage).
		SetOnConnectHandler(func(c paho.Client) {
			// Clean session: subscribe again on every (re)connect.
			tok := c.SubscribeMultiple(subs, ingestMessage)
			go func() {
				if tok.WaitTimeout(10*time.Second) && tok.Error() != nil {
					log.Error("subscribe on the external broker", "err", tok.Error())
				}
			}()
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			log.Warn("lost the external broker; reconnecting", "broker", u.Host, "err", err)
		})
	c := paho.NewClient(opts)
	tok := c.Connect()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return nil, fmt.Errorf("connect to the external broker %s: %w", u.Host, err)
		}
	case <-ctx.Done():
		c.Disconnect(0)
		return nil, ctx.Err()
	}
	return &externalBroker{client: c, addr: u.Host}, nil
}

func (e *externalBroker) Publish(topic string, payload []byte, retain bool, qos byte) error {
	tok := e.client.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("publish to %s: no acknowledgement from the external broker", topic)
	}
	return tok.Error()
}

func (e *externalBroker) Close() { e.client.Disconnect(250) }

func randomHexID() string {
	s, _ := randomSecret()
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' {
			return 'x'
		}
		return r
	}, s[:12])
}
