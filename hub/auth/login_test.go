package auth_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edk-go/edk/hub/auth"
	"github.com/edk-go/edk/hub/store"
)

// TestLoginBackoff guesses passwords as an attacker would: after the free
// failures the address gets no password check at all, so even the right
// password is refused until the backoff ends, while a device with a
// certificate still gets in.
func TestLoginBackoff(t *testing.T) {
	e := newEnv(t, auth.Options{LoginLimits: auth.LoginLimits{FreeFailures: 3, Backoff: time.Hour}})
	a := e.provision("HWA")
	for i := range 4 {
		mustRefuse(t, fmt.Sprintf("guess %d", i), e.opts(a.user, fmt.Sprintf("guess-%d", i)))
	}
	mustRefuse(t, "the right password from a blocked address", e.opts(a.user, a.pass))
	mustRefuse(t, "the admin password from a blocked address", e.opts(adminUser, adminPass))
	if !e.log.WaitFor("too many failed logins from this address", waitLimit) {
		t.Error("the block is not explained in the log")
	}
	if _, err := connect(t, e.tlsOpts(a.tls)); err != nil {
		t.Fatalf("certificate login from a blocked address: %v", err)
	}
	e.noSecretsLogged(a)
}

// slowStore is a Store whose password check takes until release is closed,
// and which records how many checks ran at once.
type slowStore struct {
	release          chan struct{}
	running, maxSeen atomic.Int32
}

func (s *slowStore) VerifyCredentials(ctx context.Context, _, _ string) (store.Device, error) {
	n := s.running.Add(1)
	defer s.running.Add(-1)
	for {
		m := s.maxSeen.Load()
		if n <= m || s.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	select {
	case <-s.release:
	case <-ctx.Done():
	}
	return store.Device{}, store.ErrUnauthorized
}

func (s *slowStore) GetDeviceByCertFingerprint(context.Context, string) (store.Device, error) {
	return store.Device{}, store.ErrNotFound
}

// TestConcurrentPasswordChecksBounded floods the hook with logins from many
// addresses at once while every password check hangs: only
// MaxConcurrentChecks of them reach the store, and the others are refused
// once they found no turn within CheckWait.
func TestConcurrentPasswordChecksBounded(t *testing.T) {
	st := &slowStore{release: make(chan struct{})}
	h := auth.New(st, auth.Options{LoginLimits: auth.LoginLimits{MaxConcurrentChecks: 2, CheckWait: 50 * time.Millisecond}})
	var wg sync.WaitGroup
	var refused atomic.Int32
	const logins = 20
	for i := range logins {
		wg.Go(func() {
			cl := &mqtt.Client{ID: fmt.Sprintf("c%d", i)}
			cl.Net.Remote = fmt.Sprintf("192.0.2.%d:1000", i)
			pk := packets.Packet{Connect: packets.ConnectParams{UsernameFlag: true, Username: []byte("u"), Password: []byte("p")}}
			if h.OnConnectAuthenticate(cl, pk) {
				t.Error("a wrong password admitted")
			}
			refused.Add(1)
		})
	}
	defer wg.Wait()
	defer close(st.release)
	deadline := time.Now().Add(waitLimit)
	for refused.Load() < logins-2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d logins refused while the checks hang; %d checks running", refused.Load(), logins, st.running.Load())
		}
		time.Sleep(time.Millisecond) // the logins run on their own goroutines
	}
	if got := st.maxSeen.Load(); got != 2 {
		t.Fatalf("%d password checks ran at once, want 2", got)
	}
}
