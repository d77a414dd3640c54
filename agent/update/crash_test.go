package update

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/internal/testutil"
	"edgefleet/models"
	"edgefleet/models/manifest"
	"edgefleet/models/tflite"
	"edgefleet/models/yolo"
)

// TestHelperAgent is the child process of TestKilledMidDownload: an
// executor that takes one command and runs until it is killed.
func TestHelperAgent(t *testing.T) {
	dir, keys, c, srv := helperWorld(t, "UPDATE_HELPER")
	x, err := New(Options{Dir: dir, Keys: keys, Swapper: srv, Health: srv, Open: openGo, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Handle(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	x.Run(context.Background()) // until killed
}

// helperWorld is what a helper agent process (a test run as a child) reads
// from its environment: <prefix>_DIR (the data dir; the test is skipped
// without it), <prefix>_KEY (the pinned public key, hex) and
// <prefix>_COMMAND (JSON); and the Serving it starts with (tinyE2E(0.9)).
func helperWorld(t *testing.T, prefix string) (dir string, keys manifest.KeySet, c api.Command, srv *Serving) {
	dir = os.Getenv(prefix + "_DIR")
	if dir == "" {
		t.Skip("helper process only")
	}
	pub, err := hex.DecodeString(os.Getenv(prefix + "_KEY"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(os.Getenv(prefix+"_COMMAND")), &c); err != nil {
		t.Fatal(err)
	}
	eng, err := tflite.Open(context.Background(), tinyE2E(0.9), models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if srv, err = NewServing(eng, nil, yolo.Options{}); err != nil {
		t.Fatal(err)
	}
	keys = manifest.KeySet{}
	keys.Add(ed25519.PublicKey(pub))
	return dir, keys, c, srv
}

// startHelper starts the helper test named run as a child process on the
// fixture's data dir and key, with command c (see helperWorld).
func startHelper(t *testing.T, f *fixture, run, prefix string, c api.Command) *exec.Cmd {
	cmdJSON, _ := json.Marshal(c)
	child := exec.Command(os.Args[0], "-test.run=^"+run+"$", "-test.v")
	child.Env = append(os.Environ(), prefix+"_DIR="+f.dir,
		prefix+"_KEY="+hex.EncodeToString(f.priv.Public().(ed25519.PublicKey)),
		prefix+"_COMMAND="+string(cmdJSON))
	child.Stdout, child.Stderr = os.Stderr, os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	return child
}

// TestKilledMidDownload kills (SIGKILL) an agent process in the middle of a
// download; the next start resumes the queued job from the partial file
// with a Range request.
func TestKilledMidDownload(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	data := tinyE2E(0.8)
	f := newFixture(t, tinyE2E(0.9), nil)
	startCamera(t, f.srv, 2*time.Millisecond)
	third := int64(len(data)) / 3
	f.art.stallAfter = third
	c := f.signed("job-killed", data, "2")
	child := startHelper(t, f, "TestHelperAgent", "UPDATE_HELPER", c)
	part := filepath.Join(f.dir, "staging", sum256(data)+".part")
	testutil.WaitFor(t, "a third of the download", jobTimeout, func() bool { return fileSize(part) >= third })
	child.Process.Kill()
	child.Wait()
	if got := fileSize(part); got != third {
		t.Fatalf("partial file after the kill: %d bytes, want %d", got, third)
	}

	f.open() // the agent starts again on the same data dir
	f.start()
	if end := f.rep.wait(t, c.JobID, jobTimeout); end.State != api.JobSucceeded {
		t.Fatalf("final %s (%s)", end.State, end.Reason)
	}
	reqs := f.art.requests()
	if len(reqs) != 2 {
		t.Fatalf("requests %+v, want 2", reqs)
	}
	if want := "bytes=" + strconv.FormatInt(third, 10) + "-"; reqs[1].Range != want || reqs[1].Status != 206 {
		t.Errorf("request after the restart: %+v, want Range %s answered 206", reqs[1], want)
	}
	if reqs[0].Bytes+reqs[1].Bytes != int64(len(data)) {
		t.Errorf("served %d + %d bytes, want %d in all", reqs[0].Bytes, reqs[1].Bytes, len(data))
	}
	if got := f.serving(); got != sum256(data) {
		t.Errorf("serving %s, want the new model", short(got))
	}
}

// TestCorruptPartialStartsOver: a partial file whose prefix is wrong (as a
// crash between write and fsync can leave) fails the sha256 check once and
// is downloaded again from the start.
func TestCorruptPartialStartsOver(t *testing.T) {
	data := tinyE2E(0.8)
	f := newFixture(t, tinyE2E(0.9), nil)
	startCamera(t, f.srv, 2*time.Millisecond)
	c := f.signed("job-corrupt-part", data, "2")
	half := len(data) / 2
	garbage := make([]byte, half)
	part := filepath.Join(f.dir, "staging", sum256(data)+".part")
	if err := os.WriteFile(part, garbage, 0o644); err != nil {
		t.Fatal(err)
	}
	f.start()
	f.handle(c)
	if end := f.rep.wait(t, c.JobID, jobTimeout); end.State != api.JobSucceeded {
		t.Fatalf("final %s (%s)", end.State, end.Reason)
	}
	reqs := f.art.requests()
	if len(reqs) != 2 || reqs[0].Range != "bytes="+strconv.Itoa(half)+"-" || reqs[1].Range != "" || reqs[1].Bytes != int64(len(data)) {
		t.Errorf("requests %+v, want a resume then a full download", reqs)
	}
}
