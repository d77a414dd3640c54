// Package deploy holds fleetd's deployment files, not Go code: a container
// build (Containerfile), a compose file with PostgreSQL, mosquitto and two
// fleetd replicas (compose.yaml, compose/), Kubernetes manifests (k8s/), a
// Grafana dashboard (grafana/) and Prometheus alert rules (prometheus/).
//
// Its test parses every one of them and checks them against the code: each
// metric name in a PromQL expression is one that agent, fleet or models
// registers, each fleetd flag is one `fleetd --help` lists, each fleetd config
// passes `fleetd --check-config`, and each exposed port is one a config
// listens on. README.md says how to use the files and how fleetd scales past
// one machine.
package deploy
