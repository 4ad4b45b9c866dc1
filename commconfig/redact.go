package commconfig

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"
)

// CertInfo is what Redacted and Describe show of a certificate: enough to
// tell which one it is and when it expires, never its body.
type CertInfo struct {
	SubjectCN string    `json:"subject_cn"`
	IssuerCN  string    `json:"issuer_cn"`
	NotAfter  time.Time `json:"not_after"`
}

func (i CertInfo) String() string {
	return fmt.Sprintf("CN=%s issued by CN=%s, expires %s", i.SubjectCN, i.IssuerCN, i.NotAfter.UTC().Format(time.RFC3339))
}

func secret(s string) string {
	return fmt.Sprintf("<redacted, %d bytes>", len(s))
}

// certs describes a PEM field. A field that holds no certificate is shown
// like a secret: it may be a private key pasted into the wrong place.
func certs(text string) any {
	parsed := parseCerts(text)
	if len(parsed) == 0 {
		return fmt.Sprintf("<no certificate, %d bytes>", len(text))
	}
	infos := make([]CertInfo, len(parsed))
	for i, c := range parsed {
		infos[i] = CertInfo{SubjectCN: c.Subject.CommonName, IssuerCN: c.Issuer.CommonName, NotAfter: c.NotAfter}
	}
	return infos
}

type entry struct {
	key   string
	value any
}

// entries is the one list of what may be shown about c, in display order;
// every redacted view is built from it.
func (c Config) entries() []entry {
	e := []entry{
		{"version", int(c.Version)},
		{"hardware_id", c.HardwareID},
		{"channel_id", c.ChannelID},
		{"host", c.Host},
		{"port", c.Port},
		{"protocol", string(c.Protocol)},
	}
	if c.Username != "" {
		e = append(e, entry{"username", c.Username})
	}
	if c.Password != "" {
		e = append(e, entry{"password", secret(c.Password)})
	}
	if c.CACert != "" {
		e = append(e, entry{"ca_cert", certs(c.CACert)})
	}
	if c.ClientCert != "" {
		e = append(e, entry{"client_cert", certs(c.ClientCert)})
	}
	if c.ClientKey != "" {
		e = append(e, entry{"client_key", secret(c.ClientKey)})
	}
	return e
}

// Redacted returns the displayable fields of c: secrets become
// "<redacted, N bytes>", certificates a []CertInfo.
func (c Config) Redacted() map[string]any {
	m := make(map[string]any)
	for _, e := range c.entries() {
		m[e.key] = e.value
	}
	return m
}

// String returns a one-line redacted view of c.
func (c Config) String() string {
	var b strings.Builder
	b.WriteString("commconfig.Config{")
	for i, e := range c.entries() {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%v", e.key, e.value)
	}
	b.WriteByte('}')
	return b.String()
}

// Format makes every fmt verb print String: without it %d, %#v and friends
// would print the secret fields by reflection.
func (c Config) Format(f fmt.State, verb rune) {
	io.WriteString(f, c.String())
}

// LogValue makes slog log the redacted view.
func (c Config) LogValue() slog.Value {
	entries := c.entries()
	attrs := make([]slog.Attr, len(entries))
	for i, e := range entries {
		attrs[i] = slog.Any(e.key, e.value)
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON marshals the redacted view, so that a Config put into an API
// response or a JSON log by reflection does not leak. Use Encode for the
// real thing.
func (c Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(c.Redacted())
}

// Describe writes a human-readable redacted view of c, one field a line, as
// `edk config decode` prints it.
func (c Config) Describe(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "broker:\t%s\n", c.BrokerURL())
	for _, e := range c.entries() {
		label := strings.ReplaceAll(e.key, "_", " ") + ":"
		infos, ok := e.value.([]CertInfo)
		if !ok {
			fmt.Fprintf(tw, "%s\t%v\n", label, e.value)
			continue
		}
		for _, info := range infos {
			fmt.Fprintf(tw, "%s\t%s\n", label, info)
			label = ""
		}
	}
	return tw.Flush()
}
