package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"edgefleet/agent/config"
	"edgefleet/agent/enroll"
	"edgefleet/internal/cli"
)

func init() {
	commands["enroll"] = command{summary: "get this device's certificate from the fleet with a one-time token",
		args: "--token T --config PATH", long: enrollLong, run: enrollDevice}
}

const enrollLong = `Makes the device's private key (written 0600 to fleet.key_file; it never
leaves the box), sends a certificate request with the one-time token that
"fleetctl devices add" printed, and writes the certificate (its subject is
device_id) to fleet.cert_file and the fleet CA bundle to fleet.ca_file.
fleetd's HTTPS certificate is checked against fleet.ca_file if that file
exists already (copy the fleet CA there first), else the system's roots.
The server defaults to fleet.server, else update.artifact_url.`

func enrollDevice(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "`path` of the agent's YAML config (required)")
	token := fs.String("token", "", "one-time enrollment `token` (required)")
	server := fs.String("server", "", "fleetd's HTTPS base `URL` (default fleet.server)")
	if _, err := cli.ParseN(fs, args, 0); err != nil {
		return err
	}
	if *cfgPath == "" || *token == "" {
		return cli.Usagef("--config and --token are required")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	f := cfg.Fleet
	if f.KeyFile == "" || f.CertFile == "" || f.CAFile == "" {
		return errors.New("the config must set fleet.key_file, fleet.cert_file and fleet.ca_file: where the identity goes")
	}
	if *server == "" {
		*server = cfg.RenewServer()
	}
	if *server == "" {
		return errors.New("no server: pass --server or set fleet.server")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cert, err := enroll.Enroll(ctx, enroll.Options{Server: *server, Token: *token, DeviceID: cfg.DeviceID,
		Paths: enroll.Paths{Key: f.KeyFile, Cert: f.CertFile, CA: f.CAFile}})
	if err != nil {
		return err
	}
	fmt.Printf("enrolled %s: certificate %s valid until %s\n", cert.Subject.CommonName, f.CertFile, cert.NotAfter.UTC().Format(time.RFC3339))
	return nil
}
