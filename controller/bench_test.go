package controller

import (
	"testing"

	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

// BenchmarkExecuteRoundTrip measures one command through the embedded broker:
// request out, a raw paho "device" answers completed at once, response back.
func BenchmarkExecuteRoundTrip(b *testing.B) {
	br := testutil.StartBroker(b)
	startDevice(b, br.Addr(), testHW, testCH, func(req mqttapi.CommandRequest) [][]byte {
		return [][]byte{response(b, req.ID, mqttapi.StateCompleted, nil)}
	})
	c := dial(b, br.Addr())
	ctx := testCtx(b)
	req := Request{Name: "ping", Arguments: map[string]int{"n": 1}}
	if _, err := c.Execute(ctx, testHW, testCH, req, nil); err != nil { // subscribe outside the loop
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Execute(ctx, testHW, testCH, req, nil)
		if err != nil || resp.State != mqttapi.StateCompleted {
			b.Fatalf("Execute = %v, %v", resp, err)
		}
	}
}
