package readmecheck

// Why a README command is not run by TestREADMECommandsRun.
const (
	synopsis    = "usage synopsis: placeholders or [optional] flags, not a command line (TestREADMESynopsisFlags checks its flags)"
	subcommand  = "names a program or subcommand in prose, not a command line"
	alternates  = "alternatives separated by |, not one command line"
	placeholder = "placeholder value (DIR, <operator token>): the test sets the same variables itself"
	longRunning = "long-running: runs until stopped or for minutes"
	testSuite   = "runs the test suite, benchmarks or another package's tests (make test and .ci/run do)"
	root        = "needs root: writes under /etc, /var/lib or /usr/local, installs systemd units"
	nativeLib   = "needs libtensorflowlite_c, which this machine does not have (placeholder path)"
	crossBuild  = "cross builds for three platforms (minutes); firmware push needs their output"
	internet    = "downloads from the internet"
	fixedPorts  = "binds or dials fixed ports (8080, 1883, 9101) other tests and demos use"
	noRepoPkg   = "needs a package argument; the README names the tool, as in go list -deps ./fleet/cmd/fleetctl"
)

// excused are the README commands no test runs, keyed by their text as
// Extract returns it, with the reason.
var excused = map[string]string{
	"make demo":                           longRunning + " (with DEMO_SECONDS=N: a build, a fleet, two agents and a rollout)",
	"make test":                           testSuite,
	"make bench":                          testSuite,
	"BENCHTIME=5x make bench":             testSuite,
	"go test -race ./...":                 testSuite,
	"EDGEFLEET_TESTDATA=DIR make test":    placeholder + "; " + testSuite,
	"scripts/fetch-testdata.sh DIR":       internet,
	"make cross":                          crossBuild,
	"make soak":                           longRunning + " (10 minutes of faults; .ci/run runs SOAK=2m make soak)",
	"SOAK=30m make soak":                  longRunning + " (30 minutes of faults)",
	"SOAK=2m make soak":                   longRunning + " (2 minutes of faults and the drain; .ci/run runs it)",
	"go generate ./models/tflite/kernel/": "rewrites committed generated assembly: a development step, not a check",
	"go test -run '^$' -fuzz FuzzOpen ./models/tflite": longRunning + " (fuzzing)",
	"go list -deps":                                    noRepoPkg,
	"edge-agent detect":                                subcommand,
	"edge-agent run":                                   subcommand,
	"edge-agent info":                                  subcommand,
	"fleetctl models push":                             subcommand,
	"fleetctl events list":                             subcommand,
	"fleetctl events snapshot":                         subcommand,
	"fleetctl counts":                                  subcommand,
	"edge-agent info --model M":                        synopsis,
	"edge-agent version [--json]":                      synopsis,
	"fleetctl devices delete ID [--purge]":             synopsis,
	"fleetd migrate --from DATA_DIR --to postgres://…": "needs a PostgreSQL URL; TestMigrate in fleet/migrate and fleet/cmd/fleetd run it",
	"edge-agent enroll --token T --config agent.yaml":  "needs an HTTPS fleetd and a box config; TestEnrolledAgentEndToEnd runs it",
	"edge-agent enroll":                                synopsis,
	"fleetctl devices revoke":                          synopsis,
	"fleetctl sim --cleanup":                           "needs a running simulator; TestSimCleanup in fleet/cmd/fleetctl runs it",
	"edge-agent detect --model M.tflite [--labels L.txt] [--conf 0.25] [--iou 0.45] [--threads N] [--batch N] [--backend auto|go|native] [--delegate none|xnnpack|gpu] [--strict] [--library PATH] [--classes 0,2] [--max-det 300] [--json] [--annotate DIR] [--profile] [--profile-top 20] IMAGE...": synopsis,
	"scripts/speedtable.sh": longRunning + " (minutes: every network at 1 and 2 threads beside ONNX Runtime, three rounds); installs onnxruntime-node from npm on first use (" + internet + ")",
	"edge-agent run --config agent.yaml [--listen 127.0.0.1:9101]":                                               synopsis,
	"go run ./agent/cmd/edge-agent run --config agent/config/testdata/demo.yaml":                                 longRunning + " (the agent runs until Ctrl-C)",
	"fleetctl firmware push bin/linux_arm64/edge-agent --arch arm64":                                             crossBuild,
	"fleetctl rollouts create --firmware edge-agent@1.4.0 --selector site=plant-a --canary 2 --health-window 5m": crossBuild + "; devices of site plant-a",
	"edge-launcher status --data /var/lib/edge-agent":                                                            root + " (a box's seeded data dir)",
	"edge-launcher rollback --data /var/lib/edge-agent":                                                          root + " (a box's seeded data dir)",
	"go test -race ./models/tflite/kernel/":                                                                      testSuite,
	"GOARCH=arm64 go test -exec qemu-aarch64-static ./models/tflite/kernel/":                                     testSuite,
	`GOARCH=arm64 go test -exec "qemu-aarch64-static -cpu cortex-a72" ./models/tflite/kernel/`:                   testSuite,
	"sudo ldconfig": root,
	"EDGEFLEET_TFLITE_LIB=/path/libtensorflowlite_c.so go test -race ./models/native ./models/backend ./agent/cmd/edge-agent":                                                                   nativeLib,
	"GOARCH=arm64 go test -c -o native.test ./models/native && EDGEFLEET_TFLITE_LIB=/path/arm64/libtensorflowlite_c.so qemu-aarch64-static -L /usr/aarch64-linux-gnu ./native.test -test.short": nativeLib,
	"bin/fleetd --config fleet/cmd/fleetd/fleetd.example.yaml":                                                                                longRunning + "; " + root + " (data_dir /var/lib/fleetd)",
	"export EDGEFLEET_SERVER=http://127.0.0.1:8080 EDGEFLEET_TOKEN=<operator token>":                                                          placeholder,
	"fleetctl devices list [--site S] [--line L] [--online true]":                                                                             synopsis,
	"fleetctl events list [--device D] [--camera C] [--type line_cross] [--label L] [--line L] [--zone Z] [--from -24h] [--to T] [--limit N]": synopsis,
	"fleetctl events snapshot DEVICE SEQ [--part crop|thumb] -o FILE":                                                                         synopsis,
	"fleetctl counts [--device D] [--camera C] [--line L] [--from -24h] [--to T] [--bucket 1h]":                                               synopsis,
	"fleetctl devices show cam-1 [--json]":                                                                                                    synopsis,
	"fleetctl sim --mqtt tcp://127.0.0.1:1883 --devices 1000 --rate 1 --duration 30s --service-user sim --service-password sim-password":      fixedPorts + "; 30 s of load",
	"fleetctl models list | show yolov8n@2 | delete yolov8n@2":                                                                                alternates,
	"fleetctl rollouts create --model yolov8n@2 --selector site=plant-a,line=3 --canary 2 --waves 10%,50%,100% --max-failures 5% --max-failure-rate 5% --min-executions 10 --health-window 2m [--job-timeout 30m] [--rollback-on-abort=false]": synopsis,
	"fleetctl audit [--limit N] [--json]":        synopsis,
	"fleetctl rollouts show":                     subcommand,
	"fleetctl rollouts accept r2 --device sim-1": "needs a device whose shadow phase failed; TestShadowRolloutEndToEnd (fleet/cmd/fleetd, real agents), TestShadowCommands (fleet/cmd/fleetctl) and TestConsoleShadow (fleet/controller) accept one",
	"fleetctl sim --devices 200 --shadow-agreement 0.9 --shadow-spread 0.1 --service-user sim --service-password sim-password &": longRunning + "; " + fixedPorts + " (TestShadowRollout200 runs the simulator's shadow phases)",
	"fleetctl rollouts list | show r1 [--all] | pause r1 | resume r1 | abort r1 --reason ... | rollback r1":                      alternates,
	"fleetctl sim --devices 1000 --rate 0.1 --duration 5m --fail-rate 0.1 --service-user sim --service-password sim-password &":  longRunning + " (5 minutes; the test starts simulated devices itself)",
	"sudo scripts/install.sh agent --keys keys/ --config agent.yaml":                                                             root,
	"sudo scripts/install.sh fleetd --config fleetd.yaml":                                                                        root,
}
