package broker_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"edgefleet/fleet/broker"
	"edgefleet/fleet/broker/brokertest"
	"edgefleet/fleet/enroll"
	"edgefleet/fleet/pki/pkitest"
)

// mtlsTarget is the login rate a 10,000-device fleet needs after a broker
// restart, reconnecting over 60 s.
const mtlsTarget = 10000.0 / 60

// BenchmarkBrokerMTLSHandshake measures mutual-TLS logins per second on the
// embedded broker's TLS listener: TCP connect, TLS handshake with a device
// certificate (chain and revocation checked), MQTT CONNECT authenticated by
// the certificate, CONNACK, DISCONNECT. One op is a burst of logins from
// 16 concurrent clients; the client side's TLS work runs on the same CPUs,
// so the rate is a lower bound of the broker's. target_ratio is the rate
// over the 167/s a 10,000-device fleet needs after a restart.
func BenchmarkBrokerMTLSHandshake(b *testing.B) {
	const devices, burst, conc = 256, 512, 16
	ca := pkitest.NewCA(b)
	store := enroll.NewMem(enroll.Options{})
	srv := brokertest.Start(b, broker.Options{TLSAddr: "127.0.0.1:0", TLS: pkitest.Server(b, ca, store, true),
		Devices: ca.Verifier(store), Logger: slog.New(slog.DiscardHandler)})
	cfgs := make([]*tls.Config, devices)
	for i := range cfgs {
		cfgs[i] = pkitest.Client(ca, pkitest.Device(b, ca, fmt.Sprintf("box-%d", i), 0))
		cfgs[i].ClientSessionCache = nil // every login a full handshake, as after a restart
	}
	var next atomic.Int64
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, conc)
		for range conc {
			wg.Go(func() {
				for range burst / conc {
					i := int(next.Add(1)) % devices
					if err := mqttLogin(srv.TLSAddr(), fmt.Sprintf("box-%d", i), cfgs[i]); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		total += time.Since(start)
		select {
		case err := <-errs:
			b.Fatal(err)
		default:
		}
	}
	rate := float64(b.N*burst) / total.Seconds()
	b.ReportMetric(rate, "handshakes/s")
	b.ReportMetric(rate/mtlsTarget, "target_ratio")
}

// mqttLogin logs in over mutual TLS with a bare MQTT 3.1.1 CONNECT
// (username = id, no password) and disconnects.
func mqttLogin(addr, id string, cfg *tls.Config) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	body := append(str("MQTT"), 4, 0x82, 0, 60) // level 4, username + clean session, keepalive 60
	body = append(append(body, str(id)...), str(id)...)
	pkt := append([]byte{0x10, byte(len(body))}, body...)
	if _, err := conn.Write(pkt); err != nil {
		return err
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(bufio.NewReader(conn), ack); err != nil {
		return fmt.Errorf("connack %s: %w", id, err)
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		return fmt.Errorf("connack %s: % x", id, ack)
	}
	_, err = conn.Write([]byte{0xe0, 0})
	return err
}
