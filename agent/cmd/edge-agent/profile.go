package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"edgefleet/internal/cli"
	"edgefleet/models"
	"edgefleet/models/tflite"
)

// profileFlags are detect's and info's --profile settings.
type profileFlags struct {
	on   bool
	top  int
	runs int
}

func (p *profileFlags) register(fs *flag.FlagSet, what string) {
	fs.BoolVar(&p.on, "profile", false, "time every operator of the go engine "+what+" and print a table per operator and per operator type (MACs and GMAC/s for convolutions and matrix products)")
	fs.IntVar(&p.top, "profile-top", 20, "with --profile: print the `N` slowest operators (0: all, in run order)")
}

func (p *profileFlags) check() error {
	if p.top < 0 {
		return cli.Usagef("--profile-top %d: want 0 or more", p.top)
	}
	return nil
}

// profiled attaches a profiler to eng, which must be the go engine.
func profiled(eng models.Engine) (*tflite.Profiler, error) {
	ip, ok := eng.(*tflite.Interpreter)
	if !ok {
		return nil, fmt.Errorf("--profile times the go engine; this run uses the %s engine (add --backend go)", eng.Info().Engine)
	}
	p := &tflite.Profiler{}
	ip.SetProfiler(p)
	return p, nil
}

// profileInvokes runs eng runs times on its current input after one
// unprofiled warm-up invoke and returns the profile.
func profileInvokes(ctx context.Context, eng models.Engine, runs int) (*tflite.ProfileReport, error) {
	if err := eng.Invoke(ctx); err != nil {
		return nil, err
	}
	p, err := profiled(eng)
	if err != nil {
		return nil, err
	}
	for range runs {
		if err := eng.Invoke(ctx); err != nil {
			return nil, err
		}
	}
	return p.Report(), nil
}

func writeProfile(w io.Writer, model string, r *tflite.ProfileReport, top int) error {
	if _, err := fmt.Fprintf(w, "profile of %s on the go engine:\n", model); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := r.WriteTable(w, top); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
