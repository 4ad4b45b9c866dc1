package modbus

import (
	"os"
	"regexp"
	"testing"
)

// The register maps shown in the README must load as they are.
func TestREADMEMapsLoad(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(# [a-z]+\\.yaml.*?)```").FindAllSubmatch(readme, -1)
	if len(blocks) < 2 {
		t.Fatalf("found %d register maps in the README, want the inverter and the meter", len(blocks))
	}
	for _, b := range blocks {
		if _, err := Parse("README.md", b[1]); err != nil {
			t.Errorf("README map does not load:\n%s\n%v", b[1], err)
		}
	}
}
