package enroll

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"edgefleet/fleet/enroll/enrollapi"
	"edgefleet/fleet/pki"
)

// HandlerOptions configures NewHandler.
type HandlerOptions struct {
	// CA issues the certificates; required.
	CA *pki.CA
	// Store holds the tokens and revocations; required.
	Store Store
	// Lifetime of issued device certificates; 0 means pki.DefaultDeviceLifetime.
	Lifetime time.Duration
	// Log receives one line per certificate issued or refused; nil means slog.Default().
	Log *slog.Logger
	// OnEnroll, if set, is called after a device has enrolled, with its
	// registration (e.g. to give the device registry its labels).
	OnEnroll func(ctx context.Context, d Device)
}

// Handler serves POST enrollapi.PathEnroll and POST enrollapi.PathRenew.
// Renewal needs the request to have come over TLS with a client
// certificate (r.TLS), which it verifies itself: fleetd mounts it on its
// HTTPS listener, configured with pki.ServerConfig. It is safe for
// concurrent use.
type Handler struct {
	ca       *pki.CA
	store    Store
	verifier *pki.Verifier
	lifetime time.Duration
	log      *slog.Logger
	onEnroll func(context.Context, Device)
	mux      *http.ServeMux
}

// NewHandler returns the enrollment handler.
func NewHandler(o HandlerOptions) *Handler {
	h := &Handler{
		ca:       o.CA,
		store:    o.Store,
		verifier: o.CA.Verifier(o.Store),
		lifetime: o.Lifetime,
		log:      o.Log,
		onEnroll: o.OnEnroll,
		mux:      http.NewServeMux(),
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.mux.HandleFunc("POST "+enrollapi.PathEnroll, h.enroll)
	h.mux.HandleFunc("POST "+enrollapi.PathRenew, h.renew)
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// apiError is a refusal with its HTTP status and wire code.
type apiError struct {
	status int
	code   string
	err    error
}

func (e *apiError) Error() string { return e.err.Error() }

func refuse(status int, code string, err error) *apiError {
	return &apiError{status: status, code: code, err: err}
}

// decodeRequest reads one JSON request of at most MaxRequestSize bytes,
// refusing unknown fields, trailing data and a missing CSR; token says
// whether a token is required (enroll) or forbidden (renew).
func decodeRequest(r io.Reader, token bool) (enrollapi.Request, *apiError) {
	var req enrollapi.Request
	body, err := io.ReadAll(io.LimitReader(r, enrollapi.MaxRequestSize+1))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge) || len(body) > enrollapi.MaxRequestSize:
		return req, refuse(http.StatusRequestEntityTooLarge, enrollapi.CodeTooLarge,
			fmt.Errorf("request body over %d bytes", enrollapi.MaxRequestSize))
	case err != nil:
		return req, refuse(http.StatusBadRequest, enrollapi.CodeBadRequest, fmt.Errorf("read request: %w", err))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, refuse(http.StatusBadRequest, enrollapi.CodeBadRequest, fmt.Errorf("request JSON: %w", err))
	}
	if dec.More() {
		return req, refuse(http.StatusBadRequest, enrollapi.CodeBadRequest, errors.New("request JSON: data after the object"))
	}
	switch {
	case req.CSR == "":
		return req, refuse(http.StatusBadRequest, enrollapi.CodeBadRequest, errors.New("request: csr is missing"))
	case token && req.Token == "":
		return req, refuse(http.StatusBadRequest, enrollapi.CodeBadRequest, errors.New("request: token is missing"))
	case !token && req.Token != "":
		return req, refuse(http.StatusBadRequest, enrollapi.CodeBadRequest, errors.New("request: renewal takes no token"))
	}
	return req, nil
}

// classify maps an error of the store, the CA or the verifier to a refusal.
func classify(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	for _, m := range []struct {
		err    error
		status int
		code   string
	}{
		{pki.ErrBadCSR, http.StatusBadRequest, enrollapi.CodeBadCSR},
		{ErrUnknownToken, http.StatusUnauthorized, enrollapi.CodeTokenUnknown},
		{ErrTokenExpired, http.StatusUnauthorized, enrollapi.CodeTokenExpired},
		{ErrTokenUsed, http.StatusUnauthorized, enrollapi.CodeTokenUsed},
		{pki.ErrNoCertificate, http.StatusUnauthorized, enrollapi.CodeNoCertificate},
		{pki.ErrUntrusted, http.StatusUnauthorized, enrollapi.CodeUntrusted},
		{ErrRevoked, http.StatusForbidden, enrollapi.CodeRevoked},
		{pki.ErrRevoked, http.StatusForbidden, enrollapi.CodeRevoked},
		{pki.ErrIdentity, http.StatusForbidden, enrollapi.CodeIdentity},
	} {
		if errors.Is(err, m.err) {
			return refuse(m.status, m.code, err)
		}
	}
	return refuse(http.StatusInternalServerError, enrollapi.CodeInternal, err)
}

func (h *Handler) enroll(w http.ResponseWriter, r *http.Request) {
	req, aerr := decodeRequest(http.MaxBytesReader(w, r.Body, enrollapi.MaxRequestSize), true)
	if aerr != nil {
		h.fail(w, r, "", aerr)
		return
	}
	if _, err := pki.ParseCSR([]byte(req.CSR)); err != nil {
		h.fail(w, r, "", classify(err))
		return
	}
	var cert *x509.Certificate
	d, err := h.store.Redeem(r.Context(), req.Token, func(d Device) error {
		var err error
		cert, err = h.ca.Issue(r.Context(), []byte(req.CSR), d.ID, h.lifetime)
		return err
	})
	if err != nil {
		h.fail(w, r, "", classify(err))
		return
	}
	h.issued(w, r, d.ID, cert)
	if h.onEnroll != nil {
		h.onEnroll(r.Context(), d)
	}
}

func (h *Handler) renew(w http.ResponseWriter, r *http.Request) {
	id, err := h.verifier.Device(r.Context(), r.TLS)
	if err != nil {
		h.fail(w, r, "", classify(err))
		return
	}
	req, aerr := decodeRequest(http.MaxBytesReader(w, r.Body, enrollapi.MaxRequestSize), false)
	if aerr != nil {
		h.fail(w, r, id, aerr)
		return
	}
	csr, err := pki.ParseCSR([]byte(req.CSR))
	if err != nil {
		h.fail(w, r, id, classify(err))
		return
	}
	if csr.Subject.CommonName != id {
		h.fail(w, r, id, refuse(http.StatusForbidden, enrollapi.CodeIdentity,
			fmt.Errorf("%w: renewal for %q by device %q", pki.ErrIdentity, csr.Subject.CommonName, id)))
		return
	}
	cert, err := h.ca.Issue(r.Context(), []byte(req.CSR), id, h.lifetime)
	if err != nil {
		h.fail(w, r, id, classify(err))
		return
	}
	h.issued(w, r, id, cert)
}

func (h *Handler) issued(w http.ResponseWriter, r *http.Request, id string, cert *x509.Certificate) {
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "enroll: certificate issued",
		slog.String("device_id", id), slog.String("path", r.URL.Path),
		slog.String("serial", cert.SerialNumber.Text(16)), slog.Time("not_after", cert.NotAfter))
	writeJSON(w, http.StatusOK, enrollapi.Response{
		DeviceID:    id,
		Certificate: string(pki.CertPEM(cert)),
		CA:          string(h.ca.Bundle()),
	})
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, id string, e *apiError) {
	level := slog.LevelWarn
	if e.status >= 500 {
		level = slog.LevelError
	}
	h.log.LogAttrs(r.Context(), level, "enroll: refused", slog.String("device_id", id),
		slog.String("path", r.URL.Path), slog.String("code", e.code), slog.String("remote", r.RemoteAddr),
		slog.String("err", e.err.Error()))
	msg := e.err.Error()
	if e.status >= 500 {
		msg = "internal error" // details are in fleetd's log
	}
	writeJSON(w, e.status, enrollapi.Error{Code: e.code, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
