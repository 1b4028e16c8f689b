package dashboard

import "sync"

// Notifier tells the open dashboards that the daemon's state changed. It
// sits beside the payment path, so Notify never blocks: every subscriber
// has room for one pending signal, and further signals coalesce into it
// (a dashboard re-reads the whole state anyway, so one wake-up is as good
// as many).
type Notifier struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

// NewNotifier makes a notifier with no subscribers.
func NewNotifier() *Notifier {
	return &Notifier{subs: map[chan struct{}]struct{}{}}
}

// Notify wakes every subscriber without waiting for any of them. A nil
// notifier does nothing, so daemons can call it unconditionally.
func (n *Notifier) Notify() {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for ch := range n.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Subscribe returns a channel that receives a signal after each change
// (coalesced), and the function that ends the subscription.
func (n *Notifier) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	n.subs[ch] = struct{}{}
	n.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			n.mu.Lock()
			delete(n.subs, ch)
			n.mu.Unlock()
		})
	}
}

// Subscribers counts the open subscriptions (for tests).
func (n *Notifier) Subscribers() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.subs)
}
