package mail

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"tokenguard/app/config"
)

// TLS modes of SMTP_TLS (DESIGN §2).
const (
	TLSStartTLS = "starttls"
	TLSImplicit = "tls"
	TLSNone     = "none"
)

// sender delivers one composed message; the Mailer's worker is its only caller.
type sender interface {
	send(ctx context.Context, from, to string, raw []byte) error
}

type smtpSender struct {
	host, addr string
	mode       string
	user, pass string
	tls        *tls.Config
	localName  string
}

func newSMTPSender(cfg config.SMTP, tlsCfg *tls.Config, localName string) (*smtpSender, error) {
	switch cfg.TLS {
	case TLSStartTLS, TLSImplicit, TLSNone:
	case "":
		cfg.TLS = TLSStartTLS
	default:
		return nil, fmt.Errorf("mail: SMTP_TLS %q: want starttls, tls or none", cfg.TLS)
	}
	if tlsCfg == nil {
		tlsCfg = &tls.Config{}
		if cfg.TLS == TLSStartTLS && isLoopback(cfg.Host) {
			// A local relay (Debian's postfix, say) often offers STARTTLS with a self-signed
			// certificate. Plain SMTP to it is allowed, so encryption without verification is
			// no weaker, and refusing it would leave the relay unusable.
			tlsCfg.InsecureSkipVerify = true
		}
	}
	tlsCfg = tlsCfg.Clone()
	if tlsCfg.ServerName == "" {
		tlsCfg.ServerName = cfg.Host
	}
	tlsCfg.MinVersion = max(tlsCfg.MinVersion, tls.VersionTLS12)
	port := cfg.Port
	if port == 0 {
		port = 587
	}
	return &smtpSender{
		host: cfg.Host, addr: net.JoinHostPort(cfg.Host, strconv.Itoa(port)),
		mode: cfg.TLS, user: cfg.User, pass: cfg.Pass, tls: tlsCfg, localName: localName,
	}, nil
}

// plainAllowed is the TLS policy: whether a session may go on without TLS when the server does
// not offer STARTTLS. Mode "none" always allows it (the operator chose so); mode "starttls"
// allows it only for a loopback host — a local mail catcher or relay, where the message never
// crosses a network — and refuses everywhere else, so a man in the middle who strips STARTTLS
// from the server's greeting cannot read invite links. Mode "tls" never speaks plain SMTP.
func plainAllowed(mode, host string) bool {
	switch mode {
	case TLSNone:
		return true
	case TLSStartTLS:
		return isLoopback(host)
	default:
		return false
	}
}

// isLoopback reports whether host is "localhost" or a loopback IP literal. Other names are not
// resolved: what a DNS answer says cannot make a host local.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *smtpSender) send(ctx context.Context, from, to string, raw []byte) error {
	c, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()

	if s.user != "" {
		if _, isTLS := c.TLSConnectionState(); !isTLS && !isLoopback(s.host) {
			return fmt.Errorf("refusing to send SMTP credentials in clear to %s (SMTP_TLS=%s)", s.host, s.mode)
		}
		if ok, _ := c.Extension("AUTH"); !ok {
			return fmt.Errorf("SMTP server %s does not offer AUTH, but SMTP_USER is set", s.host)
		}
		if err := c.Auth(sasl.NewPlainClient("", s.user, s.pass)); err != nil {
			return fmt.Errorf("SMTP AUTH: %w", err)
		}
	}
	if err := c.SendMail(from, []string{to}, bytes.NewReader(raw)); err != nil {
		return fmt.Errorf("SMTP send: %w", err)
	}
	// The server accepted the message at the final dot; a failed QUIT does not undo that.
	_ = c.Quit()
	return nil
}

// connect dials the server and secures the session as the mode requires. The connection is
// closed when ctx ends, which aborts a stuck attempt.
func (s *smtpSender) connect(ctx context.Context) (*smtp.Client, error) {
	conn, err := s.dial(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case s.mode == TLSImplicit:
		return s.greeted(smtp.NewClient(tls.Client(conn, s.tls)))
	case s.mode == TLSStartTLS && !plainAllowed(s.mode, s.host):
		c, err := smtp.NewClientStartTLS(conn, s.tls)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("STARTTLS with %s failed; refusing to send in clear to a non-loopback host: %w", s.host, err)
		}
		return c, nil
	case s.mode == TLSStartTLS:
		// A loopback host: use STARTTLS when offered, plain SMTP otherwise. go-smtp cannot
		// upgrade a session it has already greeted, so an offer means a second connection.
		c := smtp.NewClient(conn)
		if err := s.hello(c); err != nil {
			c.Close()
			return nil, err
		}
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return c, nil
		}
		c.Quit()
		c.Close()
		if conn, err = s.dial(ctx); err != nil {
			return nil, err
		}
		c, err = smtp.NewClientStartTLS(conn, s.tls)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("STARTTLS with %s: %w", s.host, err)
		}
		return c, nil
	default: // TLSNone
		return s.greeted(smtp.NewClient(conn))
	}
}

// greeted returns c once the server has greeted it and answered EHLO; otherwise it closes c.
func (s *smtpSender) greeted(c *smtp.Client) (*smtp.Client, error) {
	if err := s.hello(c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (s *smtpSender) hello(c *smtp.Client) error {
	if err := c.Hello(s.localName); err != nil {
		return fmt.Errorf("SMTP greeting from %s: %w", s.host, err)
	}
	return nil
}

func (s *smtpSender) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("connect to SMTP server: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	return &stopConn{Conn: conn, stop: stop}, nil
}

// stopConn releases the ctx watcher when the connection is closed normally.
type stopConn struct {
	net.Conn
	stop func() bool
}

func (c *stopConn) Close() error {
	c.stop()
	return c.Conn.Close()
}
