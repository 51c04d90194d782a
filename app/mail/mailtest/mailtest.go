// Package mailtest runs a real SMTP server (go-smtp's server side) on 127.0.0.1 for tests: it
// records every message it accepts, can require AUTH and offer STARTTLS, and can be taken down
// and brought back up on the same port to test retries.
package mailtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"tokenguard/app/config"
)

// Options shape the server.
type Options struct {
	// User and Pass, when set, make the server offer AUTH PLAIN and refuse mail without it.
	User, Pass string
	// StartTLS makes the server offer STARTTLS with a self-signed certificate for 127.0.0.1
	// (ClientTLS trusts it).
	StartTLS bool
	// ImplicitTLS makes the server speak TLS from the first byte (SMTPS, port 465 style) with the
	// same self-signed certificate.
	ImplicitTLS bool
	// Listen is the address to listen on; default "127.0.0.1:0".
	Listen string
	// TempFail answers the first TempFail messages with 451 (try again later).
	TempFail int
}

// Received is one accepted message.
type Received struct {
	From    string
	To      []string
	Raw     []byte
	Subject string
	Text    string
	HTML    string
	// AuthUser is the user the session authenticated as ("" when it did not).
	AuthUser string
	// TLS reports whether the session was encrypted when the message was sent.
	TLS bool
}

// Server is a recording SMTP server.
type Server struct {
	tb   testing.TB
	opts Options
	addr string
	// ClientTLS is a client configuration that trusts the server's certificate.
	ClientTLS *tls.Config
	serverTLS *tls.Config

	mu       sync.Mutex
	srv      *smtp.Server
	ln       net.Listener
	msgs     []Received
	arrived  chan struct{}
	sessions int
	// tempFailed counts messages answered 451 so far.
	tempFailed int
}

// Start runs a server (on 127.0.0.1 with a free port unless opts.Listen says otherwise); it stops
// when the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := &Server{tb: tb, opts: opts, arrived: make(chan struct{}, 1000)}
	if opts.StartTLS || opts.ImplicitTLS {
		s.serverTLS, s.ClientTLS = selfSigned(tb)
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	s.opts = opts
	l, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		tb.Fatalf("mailtest: listen: %v", err)
	}
	s.addr = l.Addr().String()
	s.serve(l)
	tb.Cleanup(s.Stop)
	return s
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return s.addr }

// SMTP returns TokenGuard settings that point at this server with the given SMTP_TLS mode.
func (s *Server) SMTP(mode string) config.SMTP {
	host, port, _ := net.SplitHostPort(s.addr)
	p, _ := strconv.Atoi(port)
	return config.SMTP{Host: host, Port: p, User: s.opts.User, Pass: s.opts.Pass,
		From: "TokenGuard <noreply@tokenguard.test>", TLS: mode}
}

func (s *Server) serve(l net.Listener) {
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		s.sessions++
		s.mu.Unlock()
		return &session{srv: s, conn: c}, nil
	}))
	srv.Domain = "mailtest.local"
	if s.opts.ImplicitTLS {
		l = tls.NewListener(l, s.serverTLS)
	} else {
		srv.TLSConfig = s.serverTLS
	}
	// Without TLS the server is a local mail catcher: AUTH over plain loopback is fine.
	srv.AllowInsecureAuth = s.serverTLS == nil
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	s.mu.Lock()
	s.srv, s.ln = srv, l
	s.mu.Unlock()
	go srv.Serve(l)
}

// Stop takes the server down (connections are refused) until Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, ln := s.srv, s.ln
	s.srv, s.ln = nil, nil
	s.mu.Unlock()
	if srv != nil {
		// The listener is closed here too: Serve may not have registered it with srv yet.
		ln.Close()
		srv.Close()
	}
}

// Restart brings a stopped server back on the same address.
func (s *Server) Restart() {
	s.tb.Helper()
	var l net.Listener
	var err error
	for range 50 { // the old socket may take a moment to let go of the port
		if l, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.tb.Fatalf("mailtest: listen again on %s: %v", s.addr, err)
	}
	s.serve(l)
}

// Messages returns the messages accepted so far.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.msgs...)
}

// Sessions returns how many SMTP sessions (EHLO) the server has seen.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// Wait blocks until the server has accepted n messages in all, and returns them; the test fails
// after timeout.
func (s *Server) Wait(n int, timeout time.Duration) []Received {
	s.tb.Helper()
	deadline := time.After(timeout)
	for {
		if msgs := s.Messages(); len(msgs) >= n {
			return msgs
		}
		select {
		case <-s.arrived:
		case <-deadline:
			s.tb.Fatalf("mailtest: %d message(s) arrived within %s, want %d", len(s.Messages()), timeout, n)
			return nil
		}
	}
}

type session struct {
	srv      *Server
	conn     *smtp.Conn
	authUser string
	from     string
	to       []string
}

func (ss *session) AuthMechanisms() []string {
	if ss.srv.opts.User == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != ss.srv.opts.User || password != ss.srv.opts.Pass {
			return smtp.ErrAuthFailed
		}
		ss.authUser = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.srv.opts.User != "" && ss.authUser == "" {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.srv.mu.Lock()
	tempFail := ss.srv.tempFailed < ss.srv.opts.TempFail
	if tempFail {
		ss.srv.tempFailed++
	}
	ss.srv.mu.Unlock()
	if tempFail {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	msg, err := Parse(raw)
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "unparsable message: " + err.Error()}
	}
	_, isTLS := ss.conn.TLSConnectionState()
	msg.From, msg.To, msg.AuthUser, msg.TLS = ss.from, ss.to, ss.authUser, isTLS
	ss.srv.mu.Lock()
	ss.srv.msgs = append(ss.srv.msgs, msg)
	ss.srv.mu.Unlock()
	select {
	case ss.srv.arrived <- struct{}{}:
	default:
	}
	return nil
}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }

// Parse reads a message TokenGuard sent: its decoded subject and its text and HTML parts.
func Parse(raw []byte) (Received, error) {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Received{}, err
	}
	var out Received
	out.Raw = raw
	if out.Subject, err = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject")); err != nil {
		return Received{}, fmt.Errorf("subject: %w", err)
	}
	mediaType, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		return Received{}, fmt.Errorf("content type: %w", err)
	}
	if mediaType != "multipart/alternative" {
		return Received{}, fmt.Errorf("content type %s, want multipart/alternative", mediaType)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Received{}, err
		}
		// NextPart decodes a quoted-printable part itself.
		body, err := io.ReadAll(p)
		if err != nil {
			return Received{}, err
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch ct {
		case "text/plain":
			out.Text = string(body)
		case "text/html":
			out.HTML = string(body)
		}
	}
	if out.Text == "" || out.HTML == "" {
		return Received{}, errors.New("message lacks a text or an HTML part")
	}
	return out, nil
}

// selfSigned makes a certificate for 127.0.0.1 and localhost, and a client config trusting it.
func selfSigned(tb testing.TB) (server, client *tls.Config) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mailtest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{RootCAs: pool}
	return server, client
}
