package auth_test

import (
	"cmp"
	"context"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/edk-go/edk/hub/auth"
	"github.com/edk-go/edk/hub/broker"
	"github.com/edk-go/edk/hub/store"
	"github.com/edk-go/edk/internal/testutil"
)

// Password schemes of the store, for benchStore: what generate_config
// issues (a salted SHA-256 of a random secret) and PBKDF2 (passwords
// issued by an older edk, and store.SetPassword's).
const (
	schemeGenerated = "generated"
	schemePBKDF2    = "pbkdf2"
)

// benchStore opens a store with one device whose password has the given
// scheme, at the hub's real cost.
func benchStore(b *testing.B, scheme string) (*store.Store, string, string) {
	b.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(b.TempDir(), "hub.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	d, err := st.CreateDevice(ctx, store.NewDevice{Name: "bench", Slug: "bench", HardwareID: "HWBENCH", ChannelID: "ch"})
	if err != nil {
		b.Fatal(err)
	}
	const user, pass = "bench-user", "bench-password-of-32-characters!"
	set := st.SetPassword
	if scheme == schemeGenerated {
		set = st.SetGeneratedPassword
	}
	if err := set(ctx, d.ID, user, pass); err != nil {
		b.Fatal(err)
	}
	return st, user, pass
}

// BenchmarkPasswordCheck is what one failed MQTT login with a user name
// costs the hub, the store's lookup included: a salted SHA-256 for a
// password generate_config issued, a PBKDF2-SHA256 check at
// store.DefaultPasswordIterations for an older one. (An unknown user name
// is checked against a dummy hash of the generated scheme.)
func BenchmarkPasswordCheck(b *testing.B) {
	for _, scheme := range []string{schemeGenerated, schemePBKDF2} {
		b.Run("scheme="+scheme, func(b *testing.B) {
			st, user, _ := benchStore(b, scheme)
			for b.Loop() {
				if _, err := st.VerifyCredentials(context.Background(), user, "wrong"); err == nil {
					b.Fatal("a wrong password verified")
				}
			}
		})
	}
}

// BenchmarkConnectUnderLoginFlood is one device's CONNECT (with the right
// password) and DISCONNECT while flooders, each on a connection of its own,
// send CONNECTs with wrong passwords as fast as the hub answers them. The
// device connects from 127.0.0.1, the flooders from other loopback
// addresses (127.0.0.2 and up), so that the per-address backoff, when on,
// does not block the device. Timing starts once every flood address has
// failed at least once.
func BenchmarkConnectUnderLoginFlood(b *testing.B) {
	if !canBind("127.0.0.2") {
		b.Skip("127.0.0.2 is not a local address here (Linux routes all of 127/8 to lo)")
	}
	for _, bc := range []struct {
		name     string
		flooders int
		addrs    int // distinct source addresses the flooders use
		limits   auth.LoginLimits
		scheme   string // the device's password scheme; "" is PBKDF2, the costly one
	}{
		{"flood=0", 0, 0, auth.LoginLimits{}, ""},
		{"flood=4/addrs=4/limits=off", 4, 4, auth.LoginLimits{FreeFailures: -1, AddrBurst: -1, MaxConcurrentChecks: -1}, ""},
		{"flood=4/addrs=4/limits=on", 4, 4, auth.LoginLimits{}, ""},
		{"flood=4/addrs=200/limits=off", 4, 200, auth.LoginLimits{FreeFailures: -1, AddrBurst: -1, MaxConcurrentChecks: -1}, ""},
		{"flood=4/addrs=200/limits=on", 4, 200, auth.LoginLimits{}, ""},
		{"flood=16/addrs=200/limits=off", 16, 200, auth.LoginLimits{FreeFailures: -1, AddrBurst: -1, MaxConcurrentChecks: -1}, ""},
		{"flood=16/addrs=200/limits=on", 16, 200, auth.LoginLimits{}, ""},
		// A hub whose devices all have generated passwords, as one that
		// edk provisioned since it stopped using PBKDF2 for them.
		{"generated/flood=16/addrs=200/limits=off", 16, 200, auth.LoginLimits{FreeFailures: -1, AddrBurst: -1, MaxConcurrentChecks: -1}, schemeGenerated},
		{"generated/flood=16/addrs=200/limits=on", 16, 200, auth.LoginLimits{}, schemeGenerated},
	} {
		b.Run(bc.name, func(b *testing.B) {
			st, user, pass := benchStore(b, cmp.Or(bc.scheme, schemePBKDF2))
			brk, err := broker.Start(context.Background(), broker.Config{Addr: "127.0.0.1:0",
				Hooks: []mqtt.Hook{auth.New(st, auth.Options{LoginLimits: bc.limits})}})
			if err != nil {
				b.Fatal(err)
			}
			defer brk.Close()
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var attempts atomic.Int64
			for f := range bc.flooders {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						idx := (f + i*bc.flooders) % bc.addrs
						ip := net.IPv4(127, 0, byte(idx/250), byte(2+idx%250))
						opts := testutil.ClientOptions(brk.Addr()).SetUsername(user).SetPassword("guess").
							SetDialer(&net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second})
						c := paho.NewClient(opts)
						_ = testutil.Wait(c.Connect())
						attempts.Add(1)
					}
				})
			}
			// Let the flood reach its steady state first: every flood
			// address has failed at least once.
			testutil.EventuallyWithin(b, time.Minute, "every flood address to fail once", func() bool {
				return attempts.Load() >= int64(max(bc.addrs, 4*bc.flooders))
			})
			start, before := time.Now(), attempts.Load()
			for b.Loop() {
				c := paho.NewClient(testutil.ClientOptions(brk.Addr()).SetUsername(user).SetPassword(pass))
				if err := testutil.Wait(c.Connect()); err != nil {
					b.Fatalf("the device was refused: %v", err)
				}
				c.Disconnect(0)
			}
			b.ReportMetric(float64(attempts.Load()-before)/time.Since(start).Seconds(), "flood-logins/s")
			close(stop)
			wg.Wait()
		})
	}
}

func canBind(ip string) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}
