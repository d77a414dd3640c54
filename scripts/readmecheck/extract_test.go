package readmecheck

import (
	"slices"
	"testing"
)

func TestExtract(t *testing.T) {
	tests := []struct {
		name, md string
		want     []string
	}{
		{"fenced sh, comment removed", "```sh\nmake demo   # the demo\nmake test\n```\n", []string{"make demo", "make test"}},
		{"fenced yaml ignored", "```yaml\nmake: x\n```\n", nil},
		{"fenced tree: only commands", "```\nagent/   the agent\nscripts/               cross builds\n```\n", nil},
		{"indented block after a blank line", "text\n\n    fleetctl devices list\n    state.json  slots\n\nmore\n",
			[]string{"fleetctl devices list"}},
		{"indented list continuation is prose", "- item\n    fleetctl x y\n", nil},
		{"backslash continuation", "\n    fleetctl sim --devices 2 \\\n        --rate 1   # load\n", []string{"fleetctl sim --devices 2 --rate 1"}},
		{"synopsis [flags] lines joined", "\n    edge-agent detect --model M\n        [--json] IMAGE...\n",
			[]string{"edge-agent detect --model M [--json] IMAGE..."}},
		{"assignments and paths", "```sh\nGOARCH=arm64 go test ./x\nbin/fleetd --check-config\nscripts/install.sh a\n```\n",
			[]string{"GOARCH=arm64 go test ./x", "bin/fleetd --check-config", "scripts/install.sh a"}},
		{"inline spans of two words or more", "Run `make help`, then `fleetctl`, `go doc ./x` and `--json`.\n",
			[]string{"make help", "go doc ./x"}},
		{"no inline spans inside a fence", "```sh\necho `make help`\n```\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, c := range Extract(tt.md) {
				got = append(got, c.Text)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Extract:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestExtractLines(t *testing.T) {
	md := "# x\n\n```sh\nmake a\n```\n\n    fleetctl b \\\n      c\n    fleetctl d\n\nsee `make e`\n"
	want := []Command{{"make a", 4, false}, {"fleetctl b c", 7, false}, {"fleetctl d", 9, false}, {"make e", 11, true}}
	if got := Extract(md); !slices.Equal(got, want) {
		t.Errorf("Extract = %+v, want %+v", got, want)
	}
}
