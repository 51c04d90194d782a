package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"tokenguard/app/budget"
	"tokenguard/store"
)

// Bounds of one attempt's bookkeeping.
const (
	// maxResponseRead bounds what is read of a receiver's answer (drained so the connection can
	// be reused, and the start kept for the error).
	maxResponseRead = 64 << 10
	// maxErrorBytes bounds the recorded error, the receiver's answer included.
	maxErrorBytes = 500
	// batch bounds the deliveries read per pass; idlePoll is the longest the worker sleeps with
	// nothing due, so rows another process added are still picked up.
	batch    = 50
	idlePoll = time.Minute
)

// OnCrossing queues budget crossings for the worker and returns at once (it runs on the
// request's goroutine, beside alert.Alerter.OnCrossing). When the queue is full the crossing is
// dropped and logged: a missed webhook is better than a held-up request.
func (s *Service) OnCrossing(cs []budget.Crossing) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return
	}
	for _, c := range cs {
		select {
		case s.queue <- c:
		default:
			s.log.Warn("webhook event dropped: queue full", "budget", c.Budget.String(), "workspace", c.WorkspaceID)
		}
	}
}

// Close stops taking crossings, writes the queued ones to the outbox, lets an attempt in flight
// finish and stops the worker; undelivered events stay in the outbox for the next start. If ctx
// ends first, the attempt in flight is cut off (and stays pending) and ctx's error returned.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.queue)
	}
	s.mu.Unlock()
	select {
	case <-s.done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		<-s.done
		return fmt.Errorf("webhook: closing: %w", ctx.Err())
	}
}

// closing reports whether Close was called.
func (s *Service) closing() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run is the worker: it writes queued crossings to the outbox and delivers what is due, then
// sleeps until the next delivery is due, a crossing or a test arrives, or idlePoll passes.
func (s *Service) run() {
	defer close(s.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	lastPrune := time.Time{}
	for {
		select {
		case c, ok := <-s.queue:
			if !ok {
				return // closed, and every queued crossing written
			}
			s.enqueue(c)
			if len(s.queue) > 0 {
				continue // write every queued crossing before delivering
			}
		case <-s.wake:
		case <-timer.C:
		}
		if s.closing() {
			s.drain()
			return
		}
		// One replica of a cluster delivers at a time (the lock): two would both post a due
		// delivery before either recorded it. A replica that finds the lock taken looks again
		// shortly, for rows the holder's pass may have missed. On SQLite it is always granted.
		unlock, ok, err := s.db.TryLock(s.ctx, lockName)
		if err != nil && s.ctx.Err() == nil {
			s.log.Error("webhook: take the delivery lock", "err", err)
		}
		if !ok {
			timer.Reset(max(s.untilNext(), busyRetry))
			continue
		}
		s.deliverDue()
		if now := s.now(); now.Sub(lastPrune) > time.Hour {
			lastPrune = now
			if n, err := s.db.PruneWebhooks(s.ctx, now.Add(-Retention).UnixMilli()); err != nil {
				s.log.Error("webhook: prune deliveries", "err", err)
			} else if n > 0 {
				s.log.Info("webhook deliveries pruned", "rows", n)
			}
		}
		unlock()
		timer.Reset(s.untilNext())
	}
}

// lockName is the cluster-wide lock a delivery pass holds (store.DB.TryLock); busyRetry is how
// soon a replica that found it taken looks again.
const (
	lockName  = "webhook-delivery"
	busyRetry = time.Second
)

// drain writes the crossings still queued at Close to the outbox.
func (s *Service) drain() {
	for c := range s.queue {
		s.enqueue(c)
	}
}

// enqueue writes c's event to the outbox when its workspace has a webhook. It runs with its own
// deadline, not the worker's context, so Close still records what was queued.
func (s *Service) enqueue(c budget.Crossing) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.db.WebhookOf(ctx, c.WorkspaceID); errors.Is(err, store.ErrNotFound) {
		return
	} else if err != nil {
		s.log.Error("webhook event not queued", "workspace", c.WorkspaceID, "err", err)
		return
	}
	now := s.now()
	body, key, ok, err := s.crossingEvent(ctx, c, now)
	if err != nil || !ok {
		if err != nil {
			s.log.Error("webhook event not queued", "workspace", c.WorkspaceID, "err", err)
		}
		return
	}
	id, err := s.db.EnqueueWebhook(ctx, store.WebhookDelivery{WorkspaceID: c.WorkspaceID, Event: EventBudgetCrossed,
		DedupeKey: key, Body: string(body), NextAt: now.UnixMilli(), CreatedAt: now.UnixMilli()}, MaxPending)
	switch {
	case err != nil:
		s.log.Error("webhook event not queued", "workspace", c.WorkspaceID, "err", err)
	case id == 0:
		s.log.Info("webhook event not queued: already sent this period, or too many pending", "workspace", c.WorkspaceID, "key", key)
	}
}

// untilNext is how long the worker may sleep: until the earliest pending delivery, at most
// idlePoll.
func (s *Service) untilNext() time.Duration {
	at, ok, err := s.db.NextWebhookDue(s.ctx)
	if err != nil || !ok {
		return idlePoll
	}
	return min(max(time.UnixMilli(at).Sub(s.now()), 0), idlePoll)
}

// deliverDue attempts every due delivery, a batch at a time.
func (s *Service) deliverDue() {
	for !s.closing() {
		due, err := s.db.DueWebhooks(s.ctx, s.now().UnixMilli(), batch)
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Error("webhook: read due deliveries", "err", err)
			}
			return
		}
		for _, d := range due {
			if s.closing() {
				return
			}
			s.attempt(d)
		}
		if len(due) < batch {
			return
		}
	}
}

// attempt posts d once and records the outcome: sent on a 2xx; failed on a permanent refusal
// or the last attempt; otherwise pending again after the backoff.
func (s *Service) attempt(d store.WebhookDelivery) {
	status, err := s.post(d)
	if err != nil && s.ctx.Err() != nil {
		return // cut off by Close's deadline: not an attempt, stays pending
	}
	d.Attempts++
	d.LastStatus = status
	d.UpdatedAt = s.now().UnixMilli()
	switch {
	case err == nil:
		d.Status, d.LastError = store.WebhookSent, ""
		s.log.Info("webhook delivered", "id", d.ID, "workspace", d.WorkspaceID, "event", d.Event, "attempts", d.Attempts)
	case d.Attempts >= s.attempts || permanent(status):
		d.Status, d.LastError = store.WebhookFailed, truncate(err.Error())
		s.log.Error("webhook failed", "id", d.ID, "workspace", d.WorkspaceID, "attempts", d.Attempts, "err", d.LastError)
	default:
		wait := s.backoff(d.Attempts)
		d.Status, d.LastError, d.NextAt = store.WebhookPending, truncate(err.Error()), s.now().Add(wait).UnixMilli()
		s.log.Warn("webhook attempt failed, will retry", "id", d.ID, "workspace", d.WorkspaceID,
			"attempt", d.Attempts, "retryIn", wait, "err", d.LastError)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.db.UpdateWebhookDelivery(ctx, d); err != nil {
		s.log.Error("webhook: record outcome", "id", d.ID, "err", err)
	}
}

// errRemoved ends a delivery whose webhook is gone (deleted between the read and the attempt).
var errRemoved = errors.New("webhook removed")

// post makes one attempt with the workspace's current URL and secret, and returns the
// receiver's status (0 when there was no answer) and why the attempt failed, if it did.
func (s *Service) post(d store.WebhookDelivery) (int, error) {
	w, err := s.db.WebhookOf(s.ctx, d.WorkspaceID)
	if errors.Is(err, store.ErrNotFound) {
		return http.StatusGone, errRemoved
	}
	if err != nil {
		return 0, err
	}
	rawURL, err := s.box.Open(w.URLSealed, urlAD(d.WorkspaceID))
	if err != nil {
		return 0, fmt.Errorf("open webhook url: %w", err)
	}
	key, err := s.box.Open(w.SecretSealed, secretAD(d.WorkspaceID))
	if err != nil {
		return 0, fmt.Errorf("open webhook secret: %w", err)
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()
	body := []byte(d.Body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, string(rawURL), bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "TokenGuard-Webhook/1")
	req.Header.Set("X-Tokenguard-Event", d.Event)
	req.Header.Set("X-Tokenguard-Delivery", strconv.FormatInt(d.ID, 10))
	req.Header.Set(SignatureHeader, Sign(string(key), s.now(), body))
	resp, err := s.client.Do(req)
	if err != nil {
		// The URL may be a credential (Slack's is): say what failed without it.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	head := make([]byte, 200)
	n, _ := io.ReadFull(resp.Body, head)
	io.CopyN(io.Discard, resp.Body, maxResponseRead)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, fmt.Errorf("receiver answered %s: %q", resp.Status, head[:n])
}

// permanent reports whether a receiver's status means the same request would meet the same
// answer (Slack's 403 invalid_token, 404 no_service, 410 channel archived; a redirect, which is
// never followed): the event is not retried. 408, 425, 429 and every 5xx are retried, as is no
// answer at all.
func permanent(status int) bool {
	switch {
	case status == 0, status == http.StatusRequestTimeout, status == http.StatusTooEarly, status == http.StatusTooManyRequests:
		return false
	case status >= 300 && status < 500:
		return true
	}
	return false
}

func truncate(s string) string {
	if len(s) <= maxErrorBytes {
		return s
	}
	return s[:maxErrorBytes] + "…"
}
