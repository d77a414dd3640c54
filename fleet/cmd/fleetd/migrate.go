package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"edgefleet/fleet/database"
	"edgefleet/fleet/migrate"
)

const migrateUsage = `usage: fleetd migrate --from DATA_DIR --to postgres://...

Copies the fleet kept in a data dir (bbolt files: devices, telemetry
history, detections) into a PostgreSQL database, creating its schema.
Stop the fleetd using DATA_DIR first. Running it again changes nothing.
`

// migrateMain runs the migrate subcommand and returns the exit code.
func migrateMain(args []string) int {
	fs := flag.NewFlagSet("fleetd migrate", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), migrateUsage); fs.PrintDefaults() }
	from := fs.String("from", "", "fleetd data dir to copy (data_dir)")
	to := fs.String("to", "", "PostgreSQL URL (postgres://user@host:5432/db)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *from == "" || *to == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	if _, err := os.Stat(*from); err != nil {
		fmt.Fprintln(os.Stderr, "fleetd migrate:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	db, err := database.Open(ctx, *to, database.Options{Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetd migrate:", err)
		return 1
	}
	defer db.Close()
	rep, err := migrate.Run(ctx, *from, db.Pool, migrate.Options{Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetd migrate:", err)
		return 1
	}
	fmt.Println(rep)
	return 0
}
