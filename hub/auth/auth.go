// Package auth is the embedded broker's authentication and ACL hook: a device
// connects only with credentials the hub issued, a password or a client
// certificate of the hub's CA, and may then publish only under
// v1/from/<its hardware id>/ and subscribe only under v1/to/<its hardware
// id>/, its last will included. A client id stays with the identity that
// holds it, persistent sessions included, and failed logins are limited
// (throttle.go). Admin clients (the hub's own tools) and, when explicitly
// allowed, anonymous clients may use every topic.
//
// The hub's own publishes and subscriptions go through mochi's inline client,
// which mochi lets through without asking this hook (publishes skip
// OnACLCheck, inline subscriptions are delivered without it); the hook also
// allows a client marked Inline should mochi ever ask.
package auth

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edk-go/edk/hub/ca"
	"github.com/edk-go/edk/hub/store"
	"github.com/edk-go/edk/internal/logfield"
	"github.com/edk-go/edk/internal/ratelog"
	"github.com/edk-go/edk/internal/srcaddr"
)

// DefaultStoreTimeout bounds one store look-up during CONNECT when
// Options.StoreTimeout is zero.
const DefaultStoreTimeout = 5 * time.Second

// maxLoggedDenials bounds how many distinct denied topics are remembered (and
// logged) per connection, so that a client probing topics cannot grow memory
// or the log without bound.
const maxLoggedDenials = 100

// At most refusalLogBurst "connection refused" lines are logged per
// refusalLogInterval; the next line says how many were left out.
const (
	refusalLogInterval = 10 * time.Second
	refusalLogBurst    = 10
)

// Log keys.
const (
	keyClient     = "client_id"
	keyHardwareID = "hardware_id"
	keyRemote     = "remote"
	keyTopic      = "topic"
	keyAccess     = "access"
	keyMethod     = "method"
	keyUsername   = "username"
	keyError      = "err"
)

// Store is what the hook needs of the hub's store (*store.Store has it).
// Both methods return an error wrapping store.ErrUnauthorized or
// store.ErrNotFound when the credential is unknown.
type Store interface {
	VerifyCredentials(ctx context.Context, username, password string) (store.Device, error)
	GetDeviceByCertFingerprint(ctx context.Context, fingerprint string) (store.Device, error)
}

// Options configures New. The zero value admits devices only.
type Options struct {
	// AllowAnonymous lets a client that presents no username and no client
	// certificate connect and use every topic. For experiments only: New's
	// hook logs a warning when the broker starts with it.
	AllowAnonymous bool
	// Admin reports whether a username and password belong to an admin
	// client, which may use every topic (the hub's CLI tools, a bridge).
	// It is asked before the store. Nil means no admins; see AdminPassword.
	Admin func(username, password string) bool
	// StoreTimeout bounds each store look-up. Zero means DefaultStoreTimeout.
	StoreTimeout time.Duration
	// MaxWillPayload is the largest last will, in bytes, a device may
	// leave; a CONNECT with a larger one is refused. The hub sets its
	// payload limit (--max-payload), which hub/limits applies to
	// publishes but which never sees a will. Zero or negative: no limit.
	MaxWillPayload int
	// LoginLimits bound failed logins (per source address and user name,
	// and per address) and concurrent password checks. The zero value
	// takes the defaults.
	LoginLimits LoginLimits
	// Logger receives denials (Warn, once per connection and topic) and
	// store failures (Error). Passwords are never logged. Nil discards.
	Logger *slog.Logger
}

// AdminPassword returns an Options.Admin that accepts exactly this username
// and password, compared in constant time.
func AdminPassword(username, password string) func(string, string) bool {
	return func(u, p string) bool {
		uok := subtle.ConstantTimeCompare([]byte(u), []byte(username))
		pok := subtle.ConstantTimeCompare([]byte(p), []byte(password))
		return username != "" && uok&pok == 1
	}
}

// role is what a connection was admitted as.
type role int

const (
	roleDevice role = iota
	roleAdmin
	roleAnonymous
)

func (r role) String() string {
	switch r {
	case roleAdmin:
		return "admin"
	case roleAnonymous:
		return "anonymous"
	default:
		return "device"
	}
}

// session is what the hook remembers about one admitted connection.
type session struct {
	cl         *mqtt.Client
	role       role
	hardwareID string // roleDevice only
	pubPrefix  string // "v1/from/<hw>/"
	subPrefix  string // "v1/to/<hw>/"

	// established is set once mochi has given the connection its session
	// (OnSessionEstablish): from then on a persistent session outlives
	// the connection, with its subscriptions and queued messages.
	established atomic.Bool

	mu     sync.Mutex
	denied map[string]struct{} // "r:topic" / "w:topic" already logged
}

// persistent reports whether the session outlives its connection in mochi:
// MQTT 3.1.1 clean_session false, or MQTT 5 with a session expiry interval.
func (s *session) persistent() bool {
	p := s.cl.Properties
	if p.ProtocolVersion == 5 {
		return p.Props.SessionExpiryInterval > 0
	}
	return !p.Clean
}

// Hook is the mochi hook. Add it to the broker with broker.Config.Hooks; it
// provides OnConnectAuthenticate, OnACLCheck, OnSessionEstablish,
// OnDisconnect and OnClientExpired. Its methods are called by mochi on the goroutine of each
// client connection and are safe for concurrent use.
type Hook struct {
	mqtt.HookBase
	store    Store
	opts     Options
	log      *slog.Logger
	throttle *throttle
	// refusals bounds the "connection refused" lines: a stranger can
	// cause one with every CONNECT.
	refusals *ratelog.Limiter
	refused  refusalCounters

	// sessions maps a client id to its *session. An entry is replaced when
	// a new connection takes the id over, and removed when the session
	// ends: at disconnect for a clean session, at expiry for a persistent
	// one, whose queued messages still pass OnACLCheck while it is offline.
	// (A connection that fails between authentication and CONNACK gets no
	// OnDisconnect; its entry stays until the client id is used again.)
	sessions sync.Map
}

var _ mqtt.Hook = (*Hook)(nil)

// New returns the hook for st.
func New(st Store, opts Options) *Hook {
	if opts.StoreTimeout <= 0 {
		opts.StoreTimeout = DefaultStoreTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Hook{store: st, opts: opts, log: opts.Logger, throttle: newThrottle(opts.LoginLimits),
		refusals: ratelog.New(refusalLogInterval, refusalLogBurst, nil)}
}

// ID names the hook in mochi's logs.
func (h *Hook) ID() string { return "edk-auth" }

// Provides reports the mochi events the hook handles.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablish, mqtt.OnDisconnect, mqtt.OnClientExpired:
		return true
	}
	return false
}

// Init is called by mochi when the hook is added; it warns when anonymous
// clients are allowed.
func (h *Hook) Init(any) error {
	if h.opts.AllowAnonymous {
		h.log.Warn("mqtt: anonymous clients are allowed and may use every topic; do not expose this broker")
	}
	return nil
}

// HardwareID returns the hardware id of the device connected as cl, and
// false for an admin, anonymous or unknown client.
func (h *Hook) HardwareID(cl *mqtt.Client) (string, bool) {
	s := h.session(cl)
	if s == nil || s.role != roleDevice {
		return "", false
	}
	return s.hardwareID, true
}

func (h *Hook) session(cl *mqtt.Client) *session {
	v, ok := h.sessions.Load(cl.ID)
	if !ok {
		return nil
	}
	s := v.(*session)
	if s.cl != cl {
		return nil // a connection whose client id was taken over
	}
	return s
}

// OnConnectAuthenticate admits a client by, in this order: admin username
// and password; TLS client certificate known to the store; device username
// and password; no credentials at all when AllowAnonymous. A client that
// presents a credential that does not check out is refused even when
// anonymous clients are allowed.
func (h *Hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	s, err := h.authenticate(cl, pk)
	if err == nil {
		err = h.checkTakeOver(cl, s)
	}
	if err == nil {
		err = checkWill(cl, s, h.opts.MaxWillPayload)
	}
	if err != nil {
		h.refused.count(err)
		lvl := slog.LevelWarn
		if !errors.Is(err, errRefused) {
			lvl = slog.LevelError // the store failed, not the client
		}
		if ok, suppressed := h.refusals.Allow(); ok {
			h.log.Log(context.Background(), lvl, "mqtt connection refused",
				keyClient, logfield.Cut(cl.ID), keyRemote, logfield.Cut(cl.Net.Remote), keyUsername, logfield.Cut(string(pk.Connect.Username)),
				keyError, err, "suppressed", suppressed)
		}
		return false
	}
	s.cl = cl
	h.sessions.Store(cl.ID, s)
	if s.role == roleDevice {
		h.log.Debug("mqtt device authenticated", keyClient, logfield.Cut(cl.ID), keyHardwareID, s.hardwareID)
	} else {
		h.log.Debug("mqtt client authenticated", keyClient, logfield.Cut(cl.ID), keyAccess, s.role.String())
	}
	return true
}

// errRefused marks a refusal caused by the client (its credentials, will
// or client id) or by the login limits; errWill and errClientID tell two of
// them apart for Stats.
var (
	errRefused  = errors.New("refused")
	errWill     = errors.New("will outside the device's topics")
	errClientID = errors.New("client id of another identity")
)

// Refusals counts refused CONNECTs by reason since New.
type Refusals struct {
	Credentials uint64 // wrong or missing password or certificate
	Blocked     uint64 // refused without a check by the login backoff
	Busy        uint64 // no password check free within LoginLimits.CheckWait
	Will        uint64 // a device's will outside its own topics
	ClientID    uint64 // a client id held by another identity
	StoreErrors uint64 // the store could not say
}

// Stats returns the refusal counters.
func (h *Hook) Stats() Refusals {
	return Refusals{Credentials: h.refused.credentials.Load(), Blocked: h.refused.blocked.Load(), Busy: h.refused.busy.Load(),
		Will: h.refused.will.Load(), ClientID: h.refused.clientID.Load(), StoreErrors: h.refused.store.Load()}
}

type refusalCounters struct {
	credentials, blocked, busy, will, clientID, store atomic.Uint64
}

func (c *refusalCounters) count(err error) {
	switch {
	case errors.Is(err, errBlocked):
		c.blocked.Add(1)
	case errors.Is(err, errBusy):
		c.busy.Add(1)
	case errors.Is(err, errWill):
		c.will.Add(1)
	case errors.Is(err, errClientID):
		c.clientID.Add(1)
	case errors.Is(err, errRefused):
		c.credentials.Add(1)
	default:
		c.store.Add(1)
	}
}

// checkTakeOver binds a client id to the identity that holds it: it refuses
// a connection that would take over the client id of another identity's
// open connection, or of its persistent session while it is offline. MQTT
// lets the newer connection win: it would knock the other device off the
// broker, and inherit an offline session's subscriptions and the messages
// queued for it, commands included (mochi resends those without asking
// OnACLCheck). The same device reconnecting (its old link not yet noticed
// dead, or coming back to its session) and admins may. A persistent
// session frees its client id when it expires (hub/broker keeps one 24 h)
// or when its own device ends it with a clean session.
func (h *Hook) checkTakeOver(cl *mqtt.Client, s *session) error {
	v, ok := h.sessions.Load(cl.ID)
	if !ok || s.role == roleAdmin {
		return nil
	}
	old := v.(*session)
	if old.role == s.role && old.hardwareID == s.hardwareID {
		return nil
	}
	if old.cl == nil {
		return nil
	}
	if !old.cl.Closed() {
		return fmt.Errorf("%w: %w: %q is in use by another identity's open connection; every device needs a client id of its own", errRefused, errClientID, logfield.Cut(cl.ID))
	}
	if old.established.Load() && old.persistent() {
		return fmt.Errorf("%w: %w: %q belongs to another identity's persistent session; every device needs a client id of its own", errRefused, errClientID, logfield.Cut(cl.ID))
	}
	// A clean session whose OnDisconnect is still to come, or a connection
	// that failed before it had a session: nothing to take over.
	return nil
}

// OnSessionEstablish marks the connection's session as given: mochi calls
// it after OnConnectAuthenticate and before it hands the connection an
// existing session of the same client id.
func (h *Hook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	if s := h.session(cl); s != nil {
		s.established.Store(true)
	}
}

// checkWill holds a device's last will to the rules of its publishes. mochi
// publishes a will when the connection drops without asking OnACLCheck
// (mochi-mqtt/server#503), so without this check a device could leave a
// will on another device's command topic, or on its telemetry, and the
// broker would deliver it as if the hub or that device had sent it. A will
// outside v1/from/<hardware id>/ (or one with wildcards, which no publish
// may have) refuses the connection; a will's retain flag is cleared, as
// hub/limits clears it on a device's publishes, so that a will cannot pin a
// message in the broker's memory either.
func checkWill(cl *mqtt.Client, s *session, maxPayload int) error {
	if s.role != roleDevice || atomic.LoadUint32(&cl.Properties.Will.Flag) == 0 {
		return nil
	}
	topic := cl.Properties.Will.TopicName
	if !under(topic, s.pubPrefix) || !mqtt.IsValidFilter(topic, true) {
		return fmt.Errorf("%w: %w: last will on %q: a device's will may only be published under %s", errRefused, errWill, logfield.Cut(topic), s.pubPrefix)
	}
	if n := len(cl.Properties.Will.Payload); maxPayload > 0 && n > maxPayload {
		return fmt.Errorf("%w: %w: last will of %d bytes, over the hub's payload limit of %d", errRefused, errWill, n, maxPayload)
	}
	cl.Properties.Will.Retain = false
	return nil
}

func (h *Hook) authenticate(cl *mqtt.Client, pk packets.Packet) (*session, error) {
	user, pass := string(pk.Connect.Username), string(pk.Connect.Password)
	hasUser := pk.Connect.UsernameFlag || user != ""
	// An address (or address and user name) that failed too often gets
	// no password check, not even the admin's; a device certificate
	// still lets it in.
	var blocked error
	addr := srcaddr.Key(cl.Net.Remote)
	if hasUser {
		blocked = h.throttle.blocked(addr, user)
	}
	if hasUser && blocked == nil && h.opts.Admin != nil && h.opts.Admin(user, pass) {
		h.throttle.succeeded(addr, user)
		return &session{role: roleAdmin}, nil
	}

	ctx, cancel := context.WithTimeout(context.Background(), h.opts.StoreTimeout)
	defer cancel()

	peer := peerCertificate(cl)
	if peer != nil {
		d, err := h.store.GetDeviceByCertFingerprint(ctx, ca.Fingerprint(peer))
		switch {
		case err == nil:
			return deviceSession(d)
		case !errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("look up client certificate: %w", err)
		case !hasUser:
			return nil, fmt.Errorf("%w: client certificate %q is not (or no longer) issued to a device",
				errRefused, peer.Subject.CommonName)
		}
		// An unknown certificate with a username: the password decides.
	}
	if hasUser {
		if blocked != nil {
			return nil, blocked
		}
		release, err := h.throttle.acquire(ctx, addr)
		if err != nil {
			return nil, err
		}
		d, err := h.store.VerifyCredentials(ctx, user, pass)
		release()
		switch {
		case err == nil:
			h.throttle.succeeded(addr, user)
			return deviceSession(d)
		case errors.Is(err, store.ErrUnauthorized), errors.Is(err, store.ErrNotFound):
			h.throttle.failed(addr, user)
			return nil, fmt.Errorf("%w: wrong username or password", errRefused)
		default:
			return nil, fmt.Errorf("verify password: %w", err)
		}
	}
	if h.opts.AllowAnonymous {
		return &session{role: roleAnonymous}, nil
	}
	return nil, fmt.Errorf("%w: no credentials (username/password or client certificate)", errRefused)
}

func deviceSession(d store.Device) (*session, error) {
	// The ACL compares topic prefixes; an id that is empty or holds a level
	// separator or wildcard would widen them.
	if d.HardwareID == "" || strings.ContainsAny(d.HardwareID, "/+#") {
		return nil, fmt.Errorf("device %s has hardware id %q, unusable in MQTT topics", d.ID, d.HardwareID)
	}
	return &session{
		role:       roleDevice,
		hardwareID: d.HardwareID,
		pubPrefix:  "v1/from/" + d.HardwareID + "/",
		subPrefix:  "v1/to/" + d.HardwareID + "/",
	}, nil
}

// peerCertificate returns the client's TLS leaf certificate, or nil for a
// plain connection. hub/broker hands mochi the *tls.Conn itself; a wrapper
// that exposes ConnectionState works too. By CONNECT the handshake is over:
// mochi has read the packet through the TLS connection.
func peerCertificate(cl *mqtt.Client) *x509.Certificate {
	c, ok := cl.Net.Conn.(interface{ ConnectionState() tls.ConnectionState })
	if !ok {
		return nil
	}
	st := c.ConnectionState()
	if !st.HandshakeComplete || len(st.PeerCertificates) == 0 {
		return nil
	}
	return st.PeerCertificates[0]
}

// OnACLCheck allows a device to publish (write) only to topics under
// v1/from/<hardware id>/ and to subscribe to filters, and receive messages,
// only under v1/to/<hardware id>/. A filter's wildcards must come after that
// prefix. Admin, anonymous and inline clients may use every topic. Each
// denial is logged once per connection and topic.
func (h *Hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	s := h.session(cl)
	if s == nil {
		h.log.Warn("mqtt access denied: client not authenticated by this hook", keyClient, logfield.Cut(cl.ID), keyTopic, logfield.Cut(topic))
		return false
	}
	if s.role != roleDevice {
		return true
	}
	prefix := s.subPrefix
	if write {
		prefix = s.pubPrefix
	}
	if under(topic, prefix) {
		return true
	}
	if s.firstDenial(topic, write) {
		access := "subscribe"
		if write {
			access = "publish"
		}
		h.log.Warn("mqtt access denied: a device may publish only under v1/from/<its hardware id>/ and subscribe only under v1/to/<its hardware id>/",
			keyClient, logfield.Cut(cl.ID), keyHardwareID, s.hardwareID, keyAccess, access, keyTopic, logfield.Cut(topic))
	}
	return false
}

// under reports whether topic (or filter) lies under prefix: the prefix's
// levels match literally and something follows. The hardware id in prefix is
// the store's and has no wildcards; a wildcard in the topic can then only
// come after the prefix.
func under(topic, prefix string) bool {
	return len(topic) > len(prefix) && strings.HasPrefix(topic, prefix)
}

// firstDenial reports whether this denial was not logged before for the
// connection, remembering at most maxLoggedDenials of them.
func (s *session) firstDenial(topic string, write bool) bool {
	key := "r:" + topic
	if write {
		key = "w:" + topic
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, seen := s.denied[key]; seen {
		return false
	}
	if s.denied == nil {
		s.denied = make(map[string]struct{})
	}
	if len(s.denied) >= maxLoggedDenials {
		return false
	}
	s.denied[key] = struct{}{}
	return true
}

// OnDisconnect forgets a clean session's client. A persistent session is
// kept until OnClientExpired or a new connection with the same client id, so
// that messages queued for it while offline still pass OnACLCheck.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if expire {
		h.forget(cl)
	}
}

// OnClientExpired forgets an expired persistent session.
func (h *Hook) OnClientExpired(cl *mqtt.Client) { h.forget(cl) }

func (h *Hook) forget(cl *mqtt.Client) {
	if s := h.session(cl); s != nil {
		h.sessions.CompareAndDelete(cl.ID, s)
	}
}
