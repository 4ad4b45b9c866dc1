package modbussim

import (
	_ "embed"
	"fmt"
	"strings"
)

// The inverter profile's register map and blueprint manifest, embedded so
// that an installed edk can hand them out (edk sim modbus --print-map)
// without the source tree.
var (
	//go:embed inverter.yaml
	inverterMap []byte
	//go:embed inverter_manifest.yml
	inverterManifest []byte
)

// ProfileFiles returns the register map (YAML for edk run --config) and the
// blueprint manifest of a profile.
func ProfileFiles(profile string) (registerMap, manifest []byte, err error) {
	switch profile {
	case "inverter":
		return inverterMap, inverterManifest, nil
	}
	return nil, nil, fmt.Errorf("unknown profile %q: want one of %s", profile, strings.Join(Profiles(), ", "))
}
