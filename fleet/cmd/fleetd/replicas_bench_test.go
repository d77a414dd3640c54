package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"edgefleet/fleet/sim"
	"edgefleet/internal/testutil"
)

// BenchmarkReplicasSimulated: simulated devices (telemetry every 10 s, one
// batch of 3 detections per second each) against two fleetd replicas on
// one PostgreSQL and one mosquitto, for 20 s. Rows: devices, batches lost,
// p50/p99 ingest-to-ack, and the CPU time per batch of the fleetd
// processes (both together), of the test database's PostgreSQL backends,
// of mosquitto and of the simulator (this test process), read from
// /proc/<pid>/stat, per batch sent (resends and telemetry not counted),
// with the read and write system calls per batch of fleetd, mosquitto and
// the simulator and PostgreSQL's commits per batch: work counts, steadier
// than CPU time on a shared machine. PostgreSQL must run on this machine
// for its column (EDGEFLEET_POSTGRES on 127.0.0.1).
func BenchmarkReplicasSimulated(b *testing.B) {
	dsn := testutil.Postgres(b)
	mq, mqPID := replicaMosquitto(b)
	dir := b.TempDir()
	bin := filepath.Join(dir, "fleetd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	reps := []*replica{startReplica(b, bin, "fleetd-a", dsn, mq), startReplica(b, bin, "fleetd-b", dsn, mq)}
	for _, n := range benchDevices(b, []int{500, 1000}) {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			for range b.N {
				procs := map[string][]int{"fleetd": {reps[0].cmd.Process.Pid, reps[1].cmd.Process.Pid}, "mosquitto": {mqPID}, "sim": {os.Getpid()}}
				before := map[string]map[int]time.Duration{}
				for k, pids := range procs {
					before[k] = cpuTimes(pids)
				}
				pgBefore, commitsBefore := cpuTimes(backendPIDs(b, dsn)), pgCommits(b, dsn)
				sysBefore := map[string]int64{}
				for k, pids := range procs {
					sysBefore[k] = syscalls(pids)
				}
				rep, err := sim.Run(context.Background(), sim.Options{Broker: "tcp://" + mq, Devices: n, Prefix: fmt.Sprintf("bench%d-", n),
					Rate: 1, Events: 3, TelemetryEvery: 10 * time.Second, Duration: 20 * time.Second, Drain: 10 * time.Second, ConnectRate: 1000,
					Login: func(string) (string, string) { return "sim", simPass }})
				if err != nil {
					b.Fatal(err)
				}
				batches := float64(max(rep.Batches, 1)) // sent: every one is processed, acked in time or not
				for k, pids := range procs {
					b.ReportMetric(cpuSince(before[k], cpuTimes(pids)).Seconds()*1e6/batches, k+"_cpu_us/batch")
				}
				b.ReportMetric(cpuSince(pgBefore, cpuTimes(backendPIDs(b, dsn))).Seconds()*1e6/batches, "postgres_cpu_us/batch")
				// Work counts, steadier than CPU time on a shared machine.
				b.ReportMetric(float64(pgCommits(b, dsn)-commitsBefore)/batches, "postgres_commits/batch")
				for k, pids := range procs {
					b.ReportMetric(float64(syscalls(pids)-sysBefore[k])/batches, k+"_syscalls/batch")
				}
				b.ReportMetric(float64(rep.Connected), "devices")
				b.ReportMetric(float64(rep.Lost), "lost")
				b.ReportMetric(rep.BatchesPerSec, "batches/s")
				b.ReportMetric(float64(rep.AckP50.Microseconds())/1000, "p50_ms")
				b.ReportMetric(float64(rep.AckP99.Microseconds())/1000, "p99_ms")
				if rep.Lost > 0 || rep.AckP99 > time.Second {
					b.Logf("not sustained: %v", rep)
				}
			}
		})
	}
}

// pgCommits is the transactions committed in dsn's database so far.
func pgCommits(b *testing.B, dsn string) int64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(ctx, `SELECT pg_stat_force_next_flush(), xact_commit FROM pg_stat_database WHERE datname = current_database()`).Scan(nil, &n); err != nil {
		b.Fatal(err)
	}
	return n
}

// syscalls sums the read and write system calls of the processes so far
// (/proc/<pid>/io; a process that cannot be read counts nothing).
func syscalls(pids []int) int64 {
	var n int64
	for _, pid := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(raw), "\n") {
			k, v, _ := strings.Cut(line, ": ")
			if k == "syscr" || k == "syscw" {
				c, _ := strconv.ParseInt(v, 10, 64)
				n += c
			}
		}
	}
	return n
}

// backendPIDs are the PostgreSQL backends connected to dsn's database.
func backendPIDs(b *testing.B, dsn string) []int {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		b.Fatal(err)
	}
	var pids []int
	var pid int
	if _, err := pgx.ForEachRow(rows, []any{&pid}, func() error { pids = append(pids, pid); return nil }); err != nil {
		b.Fatal(err)
	}
	return pids
}

// cpuTimes reads user+system CPU time of each process that can be read
// (a process on another machine cannot).
func cpuTimes(pids []int) map[int]time.Duration {
	out := map[int]time.Duration{}
	for _, pid := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command, which ends with the last ')': state is field 3, utime 14, stime 15.
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		out[pid] = time.Duration(ut+st) * time.Second / clockTicks
	}
	return out
}

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100

// cpuSince sums the CPU time each process used between two readings (a
// process not in the first counts from zero).
func cpuSince(before, after map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, t := range after {
		d += t - before[pid]
	}
	return d
}

// benchDevices is the fleet sizes to measure: EDGEFLEET_BENCH_DEVICES
// (comma-separated, e.g. 2000,5000) or def.
func benchDevices(b *testing.B, def []int) []int {
	env := os.Getenv("EDGEFLEET_BENCH_DEVICES")
	if env == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(env, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("EDGEFLEET_BENCH_DEVICES: %q is not a device count", f)
		}
		out = append(out, n)
	}
	return out
}
