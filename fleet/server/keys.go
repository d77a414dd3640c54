package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/artifact"
	"edgefleet/models/manifest"
)

// KeyRing is fleetd's signing keys, for the key routes (artifact.Ring
// satisfies it). Routes (viewer unless noted):
//
//	GET  /api/v1/keys                 every key: the signing one first, then retired ones
//	GET  /api/v1/keys/{id}            one key; {id}.pub or ?format=pem answers its PEM file;
//	                                  id "signing" is the signing key
//	POST /api/v1/keys/rotate          admin: a new signing key; the old one is retired
type KeyRing interface {
	Keys(ctx context.Context) ([]artifact.Key, error)
	Rotate(ctx context.Context) (signing, retired artifact.Key, err error)
}

var _ KeyRing = artifact.Ring(nil)

func restKey(k artifact.Key) (rest.Key, error) {
	pem, err := manifest.EncodePublicKey(k.Public)
	if err != nil {
		return rest.Key{}, err
	}
	src := rest.KeySourceFleetd
	if k.Source == artifact.SourceConfig {
		src = rest.KeySourceConfig
	}
	return rest.Key{ID: k.ID, PublicKey: string(pem), Signing: k.Signing, Source: src, CreatedAt: k.Created, RetiredAt: k.Retired}, nil
}

func keyStatus(err error) int {
	switch {
	case errors.Is(err, artifact.ErrKeyFixed):
		return http.StatusConflict
	case errors.Is(err, artifact.ErrKeyNotFound):
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

func (s *Server) keyList(w http.ResponseWriter, r *http.Request) {
	ks, err := s.opt.OTA.Keys.Keys(r.Context())
	if err != nil {
		writeError(w, keyStatus(err), "%v", err)
		return
	}
	out := rest.KeyList{Keys: []rest.Key{}}
	for _, k := range ks {
		rk, err := restKey(k)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "key %s: %v", k.ID, err)
			return
		}
		out.Keys = append(out.Keys, rk)
	}
	writeJSON(w, http.StatusOK, out)
}

// keyShow answers one key as JSON, or its public key file for {id}.pub
// and ?format=pem.
func (s *Server) keyShow(w http.ResponseWriter, r *http.Request) {
	id, pemFile := strings.CutSuffix(r.PathValue("id"), ".pub")
	switch f := r.URL.Query().Get("format"); f {
	case "", "json":
	case rest.KeyFormatPEM:
		pemFile = true
	default:
		writeError(w, http.StatusBadRequest, "format: %q is not json or pem", f)
		return
	}
	ks, err := s.opt.OTA.Keys.Keys(r.Context())
	if err != nil {
		writeError(w, keyStatus(err), "%v", err)
		return
	}
	for _, k := range ks {
		if k.ID != id && !(id == rest.SigningKeyID && k.Signing) {
			continue
		}
		rk, err := restKey(k)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "key %s: %v", k.ID, err)
			return
		}
		if pemFile {
			w.Header().Set("Content-Type", "application/x-pem-file")
			w.Header().Set("Content-Disposition", `attachment; filename="`+k.ID+`.pub"`)
			w.Write([]byte(rk.PublicKey))
			return
		}
		writeJSON(w, http.StatusOK, rk)
		return
	}
	writeError(w, http.StatusNotFound, "no key %q (GET /api/v1/keys lists them)", id)
}

func (s *Server) keyRotate(w http.ResponseWriter, r *http.Request) {
	signing, retired, err := s.opt.OTA.Keys.Rotate(r.Context())
	if err != nil {
		writeError(w, keyStatus(err), "%v", err)
		return
	}
	var out rest.KeyRotation
	if out.Signing, err = restKey(signing); err == nil {
		out.Retired, err = restKey(retired)
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	op, _ := s.operator(r)
	s.log.Warn("signing key rotated: agents must pin the new public key (fleetctl keys export)", "key_id", signing.ID, "retired", retired.ID, "operator", op)
	writeJSON(w, http.StatusCreated, out)
}

// keyTarget names the new signing key and the retired one in the audit log.
func keyTarget(_ *http.Request, body []byte) (string, string) {
	var kr rest.KeyRotation
	if json.Unmarshal(body, &kr) != nil || kr.Signing.ID == "" {
		return "", ""
	}
	return kr.Signing.ID, "retired " + kr.Retired.ID
}
