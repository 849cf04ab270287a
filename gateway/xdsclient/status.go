package xdsclient

import (
	"slices"
	"time"
)

// Status is a point-in-time view of the client, for the admin config dump
// and readiness. The JSON field names are part of the admin API.
type Status struct {
	// Connected reports whether an ADS stream is open.
	Connected bool `json:"connected"`
	// LastConnected is when the last stream opened; zero if none did.
	LastConnected time.Time `json:"lastConnected,omitzero"`
	// LastDisconnected is when the last open stream ended; zero if none did.
	LastDisconnected time.Time `json:"lastDisconnected,omitzero"`
	// LastStreamError is why the last stream ended or failed to open.
	LastStreamError string `json:"lastStreamError,omitempty"`
	// Types holds the state of each type URL the client subscribed to or
	// received, keyed by type URL.
	Types map[string]TypeStatus `json:"types"`
}

// TypeStatus is the state of one resource type.
type TypeStatus struct {
	// Version is the last accepted (ACKed) version; empty until one is.
	Version string `json:"version,omitempty"`
	// LastAccepted is when Version was accepted.
	LastAccepted time.Time `json:"lastAccepted,omitzero"`
	// Nonce is the nonce of the last response received for the type.
	Nonce string `json:"nonce,omitempty"`
	// Names are the subscribed resource names, sorted; empty for wildcard
	// types and for dependent types nothing references.
	Names []string `json:"names,omitempty"`
	// RejectedVersion and RejectError describe the last NACK. They are
	// cleared when a later response of the type is accepted, so a
	// non-empty RejectError means the server's current version is not in
	// force.
	RejectedVersion string `json:"rejectedVersion,omitempty"`
	// RejectError is the error_detail message of the last NACK.
	RejectError string `json:"rejectError,omitempty"`
	// LastRejected is when the last NACK was decided.
	LastRejected time.Time `json:"lastRejected,omitzero"`
}

type clientState struct {
	connected        bool
	lastConnected    time.Time
	lastDisconnected time.Time
	lastStreamError  string
	types            map[string]*TypeStatus
}

// Status returns a copy of the client's current state. It is safe to call
// from any goroutine, including from Hooks.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{
		Connected:        c.state.connected,
		LastConnected:    c.state.lastConnected,
		LastDisconnected: c.state.lastDisconnected,
		LastStreamError:  c.state.lastStreamError,
		Types:            make(map[string]TypeStatus, len(c.state.types)),
	}
	for url, ts := range c.state.types {
		t := *ts
		t.Names = slices.Clone(t.Names)
		st.Types[url] = t
	}
	return st
}

// typeLocked returns the state of typeURL, creating it. c.mu must be held.
func (c *Client) typeLocked(typeURL string) *TypeStatus {
	ts, ok := c.state.types[typeURL]
	if !ok {
		ts = &TypeStatus{}
		c.state.types[typeURL] = ts
	}
	return ts
}

func (c *Client) setConnected() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state.connected = true
	c.state.lastConnected = time.Now()
}

func (c *Client) setDisconnected(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state.connected = false
	c.state.lastDisconnected = time.Now()
	c.state.lastStreamError = ""
	if err != nil {
		c.state.lastStreamError = err.Error()
	}
}

func (c *Client) setStreamError(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state.lastStreamError = err.Error()
}

// acceptedVersion returns the last accepted version of typeURL.
func (c *Client) acceptedVersion(typeURL string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ts, ok := c.state.types[typeURL]; ok {
		return ts.Version
	}
	return ""
}

func (c *Client) recordNonce(typeURL, nonce string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.typeLocked(typeURL).Nonce = nonce
}

func (c *Client) recordNames(typeURL string, names []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.typeLocked(typeURL).Names = slices.Clone(names)
}

// recordAccept records an accepted version and reports whether it differs
// from the previous one.
func (c *Client) recordAccept(typeURL, version string) (changed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := c.typeLocked(typeURL)
	changed = ts.Version != version || ts.LastAccepted.IsZero()
	ts.Version = version
	ts.LastAccepted = time.Now()
	ts.RejectedVersion = ""
	ts.RejectError = ""
	return changed
}

func (c *Client) recordReject(typeURL, version, msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := c.typeLocked(typeURL)
	ts.RejectedVersion = version
	ts.RejectError = msg
	ts.LastRejected = time.Now()
}
