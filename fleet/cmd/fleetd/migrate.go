package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"edgefleet/fleet/database"
	"edgefleet/fleet/migrate"
	"edgefleet/internal/cli"
)

func init() {
	commands["migrate"] = command{
		summary: "copy a data dir's fleet (bbolt files) into PostgreSQL",
		args:    "--from DATA_DIR --to URL",
		long: `Copies the fleet kept in a data dir (bbolt files: devices, telemetry
history, detections, models and firmware, rollouts, the generated signing
key) into a PostgreSQL database, creating its schema. Stop the fleetd
using DATA_DIR first. What the database has already is left as it is, so
running it again changes nothing.`,
		run: migrateCmd,
	}
}

// migrateCmd is `fleetd migrate --from DATA_DIR --to URL`.
func migrateCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fleetd migrate", flag.ContinueOnError)
	fs.String("config", defaultConfig, "config `file` (unused: migrate reads only --from)")
	from := fs.String("from", "", "fleetd data `dir` to copy (its data_dir)")
	to := fs.String("to", "", "PostgreSQL `url` (postgres://user@host:5432/db)")
	if _, err := cli.ParseN(fs, args, 0); err != nil {
		return err
	}
	if *from == "" || *to == "" {
		return cli.Usagef("--from and --to are required")
	}
	if _, err := os.Stat(*from); err != nil {
		return cli.Usagef("--from: %v", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	db, err := database.Open(ctx, *to, database.Options{Logger: log})
	if err != nil {
		return err
	}
	defer db.Close()
	rep, err := migrate.Run(ctx, *from, db.Pool, migrate.Options{Logger: log})
	if err != nil {
		return err
	}
	fmt.Println(rep)
	return nil
}
