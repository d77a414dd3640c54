package runtime

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestClockFromEnv(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Setenv(ClockOffsetEnv, "")
	if clockFromEnv(log) != nil {
		t.Fatal("a clock without the env set; want nil (time.Now)")
	}
	file := filepath.Join(t.TempDir(), "offset")
	t.Setenv(ClockOffsetEnv, file)
	c := &offsetClock{path: file, log: log}
	cases := []struct {
		content string
		want    time.Duration
	}{
		{"", 0}, // missing file
		{"2h\n", 2 * time.Hour},
		{"-90m", -90 * time.Minute},
		{"not a duration", 0},
	}
	for _, tc := range cases {
		if tc.content != "" {
			if err := os.WriteFile(file, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		c.read = time.Time{} // as if a second had passed since the last read
		before := time.Now()
		got := c.now().Sub(before)
		if got < tc.want || got > tc.want+time.Minute {
			t.Errorf("file %q: clock is %v ahead, want %v", tc.content, got, tc.want)
		}
	}
	if clockFromEnv(log) == nil {
		t.Fatal("no clock with the env set")
	}
}
