package commconfig

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const testPassword = "Pa55-w0rd-that-must-never-leak"

// secretsOf lists substrings of c that must never be shown: the password and
// every line of every PEM body.
func secretsOf(c Config) []string {
	secrets := []string{testPassword, "PRIVATE KEY"}
	for _, text := range []string{c.CACert, c.ClientCert, c.ClientKey} {
		for _, line := range strings.Split(text, "\n") {
			if line != "" && !strings.HasPrefix(line, "-----") {
				secrets = append(secrets, line)
			}
		}
	}
	return secrets
}

func assertNoSecrets(t *testing.T, what, out string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("%s leaks %q:\n%s", what, s, out)
		}
	}
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	c := p.mqttsConfig()
	c.Username = "device-user"
	c.Password = testPassword // not used by MQTTS, but must still be hidden
	secrets := secretsOf(c)

	outputs := map[string]string{
		"String":         c.String(),
		"%v":             fmt.Sprintf("%v", c),
		"%+v":            fmt.Sprintf("%+v", c),
		"%#v":            fmt.Sprintf("%#v", c),
		"%s":             fmt.Sprintf("%s", c),
		"%d":             fmt.Sprintf("%d", c),
		"%x":             fmt.Sprintf("%x", c),
		"%q":             fmt.Sprintf("%q", c),
		"pointer %+v":    fmt.Sprintf("%+v", &c),
		"pointer %#v":    fmt.Sprintf("%#v", &c),
		"nested %+v":     fmt.Sprintf("%+v", struct{ Cfg Config }{c}),
		"Println":        fmt.Sprintln(c, &c),
		"Redacted":       fmt.Sprintf("%+v", c.Redacted()),
		"slog JSON":      logOutput(t, true, c),
		"slog text":      logOutput(t, false, c),
		"slog JSON ptr":  logOutput(t, true, &c),
		"json.Marshal":   mustJSON(t, c),
		"json.Marshal *": mustJSON(t, &c),
	}
	var desc bytes.Buffer
	if err := c.Describe(&desc); err != nil {
		t.Fatal(err)
	}
	outputs["Describe"] = desc.String()

	for what, out := range outputs {
		assertNoSecrets(t, what, out, secrets)
		if !strings.Contains(out, "HW0123456789") {
			t.Errorf("%s does not show the hardware id:\n%s", what, out)
		}
	}
	for _, want := range []string{
		"broker:", "ssl://gateway.local:8883", "device-user",
		fmt.Sprintf("<redacted, %d bytes>", len(testPassword)),
		fmt.Sprintf("<redacted, %d bytes>", len(c.ClientKey)),
		"CN=test-device issued by CN=Test Enapter CA",
		"CN=Test Enapter CA issued by CN=Test Enapter CA",
		p.client.cert.NotAfter.UTC().Format("2006-01-02T15:04"),
	} {
		if !strings.Contains(desc.String(), want) {
			t.Errorf("Describe output lacks %q:\n%s", want, desc.String())
		}
	}
}

func logOutput(t *testing.T, asJSON bool, v any) string {
	t.Helper()
	var buf bytes.Buffer
	var h slog.Handler = slog.NewTextHandler(&buf, nil)
	if asJSON {
		h = slog.NewJSONHandler(&buf, nil)
	}
	slog.New(h).Info("connecting", "config", v)
	return buf.String()
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestRedactionOfUnparseableCertificate(t *testing.T) {
	t.Parallel()
	// A key pasted into a certificate field must be hidden like a key.
	p := newPKI(t)
	c := Config{Version: Version3, CACert: p.client.keyPEM, ClientCert: "not PEM " + testPassword}
	for what, out := range map[string]string{"String": c.String(), "JSON": mustJSON(t, c)} {
		assertNoSecrets(t, what, out, secretsOf(c))
		if !strings.Contains(out, "no certificate, ") {
			t.Errorf("%s does not mark the field as holding no certificate: %s", what, out)
		}
	}
}

func TestErrorsDoNotLeak(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	other := newPKI(t)
	mismatched := v3CertDoc(p)
	creds(mismatched)["private_key"] = other.client.keyPEM
	keyAsCA := v3CertDoc(p)
	creds(keyAsCA)["ca_chain"] = p.client.keyPEM
	keyAsCert := v3CertDoc(p)
	creds(keyAsCert)["certificate"] = p.client.keyPEM
	v1KeyAsCA := v1Doc(p)
	v1KeyAsCA["mqtt_ca"] = p.client.keyPEM
	badPortWithPassword := v3Doc()
	creds(badPortWithPassword)["password"] = testPassword
	badPortWithPassword["mqtt_port"] = testPassword

	secrets := append(secretsOf(Config{ClientKey: p.client.keyPEM + other.client.keyPEM, ClientCert: p.client.certPEM}), testPassword)
	syntaxBlob := base64.StdEncoding.EncodeToString([]byte(`{"mqtt_credentials":{"password":"` + testPassword + `"x}}`))
	var errs []error
	for _, b := range []string{
		blob(t, mismatched), blob(t, keyAsCA), blob(t, keyAsCert), blob(t, v1KeyAsCA), blob(t, badPortWithPassword),
		syntaxBlob,
		testPassword + "!!!",
		p.client.keyPEM,
	} {
		_, err := Parse(b)
		errs = append(errs, err)
		_, err = FromEnv(getenv(map[string]string{EnvConfig: b}))
		errs = append(errs, err)
	}
	bad := p.mqttsConfig()
	bad.ClientKey = other.client.keyPEM
	_, err := bad.TLSConfig(false)
	errs = append(errs, err)
	_, err = bad.Encode()
	errs = append(errs, err)
	v1 := p.mqttsConfig()
	v1.Version, v1.Password = Version1, testPassword
	_, err = v1.Encode()
	errs = append(errs, err)

	for i, err := range errs {
		if err == nil {
			t.Errorf("case %d: no error", i)
			continue
		}
		assertNoSecrets(t, fmt.Sprintf("error %d", i), err.Error(), secrets)
	}
}
