package cluster

// ListenerPID is the backend pid of the listener's current session (0 while reconnecting), so a
// test can end that session from outside.
func (n *Notifier) ListenerPID() uint32 { return n.pid.Load() }

// Connects is how many listener sessions have been opened.
func (n *Notifier) Connects() int64 { return n.connects.Load() }
