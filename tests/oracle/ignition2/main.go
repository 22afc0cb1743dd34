// ignition2-check: validates an Ignition spec 2.x config with Ignition's own config parser
// (github.com/coreos/ignition v0.31.0, as vendored by matchbox v0.8.3): the oracle caas's
// tests hold its spec 2.x output to. Built offline inside matchbox's source tree by
// scripts/install-test-deps.sh.
//
// Usage: ignition2-check FILE
//
// Each version is parsed by the package of that version, which accepts exactly that version:
// 2.0.0 by config/v2_0, 2.1.0 by config/v2_1, 2.2.0 by config/v2_2. matchbox vendors no
// config/v2_3, so 2.3.0 is read into config/v2_4_experimental's types (2.3's successor, which
// accepts 2.3.0 as an older minor) and validated by the same validator.
//
// Prints "ok 2.x.0" and every report entry ("warning: …", with its line) on stdout. Exit 0 for
// a valid config without warnings, 1 for a config the parser refuses, 2 for usage errors, 3 for
// a valid config with warnings (an unknown key is a warning in Ignition).
package main

import (
	"encoding/json"
	"fmt"
	"io/ioutil"
	"os"

	"github.com/coreos/ignition/config/v2_0"
	"github.com/coreos/ignition/config/v2_1"
	"github.com/coreos/ignition/config/v2_2"
	v24types "github.com/coreos/ignition/config/v2_4_experimental/types"
	"github.com/coreos/ignition/config/validate"
	"github.com/coreos/ignition/config/validate/report"

	// The JSON reader Ignition's parsers use (case-sensitive keys, unlike encoding/json).
	ignjson "github.com/ajeddeloh/go-json"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: ignition2-check FILE")
		os.Exit(2)
	}
	raw, err := ioutil.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var head struct {
		Ignition struct {
			Version string `json:"version"`
		} `json:"ignition"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		fmt.Printf("error: not JSON: %v\n", err)
		os.Exit(1)
	}
	rpt, err := parse(head.Ignition.Version, raw)
	for _, entry := range rpt.Entries {
		fmt.Println(entry.String())
	}
	if err != nil {
		fmt.Printf("error: %v\n", err)
		os.Exit(1)
	}
	if rpt.IsFatal() {
		fmt.Println("error: the report has errors")
		os.Exit(1)
	}
	fmt.Printf("ok %s\n", head.Ignition.Version)
	for _, entry := range rpt.Entries {
		if entry.Kind != report.EntryInfo {
			os.Exit(3)
		}
	}
}

// parse runs the parser of exactly `version`.
func parse(version string, raw []byte) (report.Report, error) {
	switch version {
	case "2.0.0":
		_, rpt, err := v2_0.Parse(raw)
		return rpt, err
	case "2.1.0":
		_, rpt, err := v2_1.Parse(raw)
		return rpt, err
	case "2.2.0":
		_, rpt, err := v2_2.Parse(raw)
		return rpt, err
	case "2.3.0":
		var config v24types.Config
		if err := ignjson.Unmarshal(raw, &config); err != nil {
			return report.Report{}, err
		}
		return validate.ValidateConfig(raw, config), nil
	default:
		return report.Report{}, fmt.Errorf("ignition.version %q is not 2.0.0, 2.1.0, 2.2.0 or 2.3.0", version)
	}
}
