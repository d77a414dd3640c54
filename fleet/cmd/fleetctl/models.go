package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"edgefleet/fleet/api/rest"
)

func init() {
	commands["models push"] = command{"upload and sign a model: models push FILE --name N --version V [--labels FILE]", modelsPush}
	commands["models list"] = command{"list stored models", modelsList}
	commands["models show"] = command{"show a model and its signed manifest: models show NAME@VERSION", modelsShow}
	commands["models delete"] = command{"delete a model (refused while a rollout uses it)", modelsDelete}
}

// splitNameVersion splits "name@version".
func splitNameVersion(s string) (string, string, error) {
	n, v, ok := strings.Cut(s, "@")
	if !ok || n == "" || v == "" {
		return "", "", fmt.Errorf("%w: %q is not NAME@VERSION", errUsage, s)
	}
	return n, v, nil
}

// progress counts bytes read and draws a bar on w at most every 200 ms.
type progress struct {
	r     io.Reader
	w     io.Writer
	label string
	total int64

	mu   sync.Mutex
	n    int64
	last time.Time
}

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.mu.Lock()
	p.n += int64(n)
	if now := time.Now(); now.Sub(p.last) > 200*time.Millisecond || err == io.EOF {
		p.last = now
		p.draw()
	}
	p.mu.Unlock()
	return n, err
}

func (p *progress) draw() {
	const width = 30
	frac := float64(p.n) / float64(max(p.total, 1))
	fill := int(frac * width)
	fmt.Fprintf(p.w, "\r%s [%s%s] %3.0f%% %.1f/%.1f MB", p.label, strings.Repeat("=", min(fill, width)), strings.Repeat(" ", max(width-fill, 0)),
		100*frac, float64(p.n)/1e6, float64(p.total)/1e6)
}

// isTerminal reports whether f is a character device (a terminal), where a
// progress bar redrawn with \r makes sense.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func modelsPush(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("models push", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	name := fs.String("name", "", "model name (required)")
	version := fs.String("version", "", "model version (required)")
	labelsPath := fs.String("labels", "", "label file, one class name per line")
	quiet := fs.Bool("quiet", false, "no progress bar")
	pos, err := parseFlags(fs, args, 1)
	if err != nil {
		return err
	}
	if *name == "" || *version == "" {
		return fmt.Errorf("%w: models push needs --name and --version", errUsage)
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return fmt.Errorf("models push: %w", err)
	}
	defer f.Close()
	var labels []byte
	if *labelsPath != "" {
		if labels, err = os.ReadFile(*labelsPath); err != nil {
			return fmt.Errorf("models push: labels: %w", err)
		}
	}
	mv, err := upload(ctx, c, &cf, rest.KindModel, rest.Upload{Name: *name, Version: *version, Labels: labels}, f, "pushing "+*name+"@"+*version, *quiet)
	if err != nil {
		return fmt.Errorf("models push: %w", err)
	}
	if cf.json {
		return printJSON(w, mv)
	}
	fmt.Fprintf(w, "pushed %s@%s sha256 %s (%d bytes), signed by key %s\n", mv.Name, mv.Version, mv.SHA256, mv.Size, mv.KeyID)
	return nil
}

func modelsList(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("models list", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	models, err := c.Artifacts(ctx, rest.KindModel)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, models)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tSIZE\tSHA256\tINPUT\tLABELS\tKEY\tCREATED\tIN USE")
	for _, m := range models {
		in := "-"
		if len(m.Inputs) > 0 {
			in = fmt.Sprintf("%s%v", m.Inputs[0].Type, m.Inputs[0].Shape)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f MB\t%s\t%s\t%d\t%s\t%s\t%s\n", m.Name, m.Version, float64(m.Size)/1e6, m.SHA256[:12], in, m.Labels,
			dash(m.KeyID), m.CreatedAt.Local().Format(time.DateTime), dash(strings.Join(m.InUse, ",")))
	}
	return tw.Flush()
}

func modelsShow(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("models show", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	pos, err := parseFlags(fs, args, 1)
	if err != nil {
		return err
	}
	n, v, err := splitNameVersion(pos[0])
	if err != nil {
		return err
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	mv, err := c.Artifact(ctx, rest.KindModel, n, v)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, mv)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("Model", mv.Name+"@"+mv.Version)
	row("SHA256", mv.SHA256)
	row("Size", fmt.Sprintf("%d bytes", mv.Size))
	row("Created", mv.CreatedAt.Local().Format(time.DateTime))
	row("Signed by", dash(mv.KeyID))
	row("Labels", fmt.Sprint(mv.Labels))
	for _, t := range mv.Inputs {
		row("Input", tensorString(t))
	}
	for _, t := range mv.Outputs {
		row("Output", tensorString(t))
	}
	row("In use by", dash(strings.Join(mv.InUse, ", ")))
	return tw.Flush()
}

func tensorString(t rest.Tensor) string {
	s := fmt.Sprintf("%s %s%v", t.Name, t.Type, t.Shape)
	if t.Scale != 0 {
		s += fmt.Sprintf(" scale %g zero %d", t.Scale, t.ZeroPoint)
	}
	return s
}

func modelsDelete(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("models delete", flag.ContinueOnError)
	var cf clientFlags
	cf.registerConn(fs) // prints one line: no --json
	pos, err := parseFlags(fs, args, 1)
	if err != nil {
		return err
	}
	n, v, err := splitNameVersion(pos[0])
	if err != nil {
		return err
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	if _, err := c.DeleteArtifact(ctx, rest.KindModel, n, v); err != nil {
		return err
	}
	fmt.Fprintf(w, "deleted %s@%s\n", n, v)
	return nil
}
