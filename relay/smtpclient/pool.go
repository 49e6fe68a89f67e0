package smtpclient

import (
	"io"
	"time"
)

// takeIdle returns an idle session for key that has not idled longer than
// IdleTimeout, or nil; those that have are ended. It is not probed: its
// first transaction finds out whether the server closed it meanwhile
// (without a round trip of its own), and Deliver then takes another.
func (c *Client) takeIdle(key string) *session {
	for {
		c.mu.Lock()
		list := c.idle[key]
		if len(list) == 0 {
			c.mu.Unlock()
			return nil
		}
		s := list[len(list)-1] // the most recently used
		c.idle[key] = list[:len(list)-1]
		if len(c.idle[key]) == 0 {
			delete(c.idle, key)
		}
		c.mu.Unlock()
		if time.Since(s.idleSince) >= c.cfg.IdleTimeout {
			s.quit()
			continue
		}
		s.reused = true
		return s
	}
}

// putIdle keeps s for reuse, or ends it when the pool for key is full.
func (c *Client) putIdle(key string, s *session) {
	s.stop() // no longer tied to the finished delivery's context
	s.stop = func() bool { return false }
	s.idleSince = time.Now()
	c.mu.Lock()
	if len(c.idle[key]) < c.cfg.MaxIdle {
		c.idle[key] = append(c.idle[key], s)
		s = nil
	}
	c.mu.Unlock()
	if s != nil {
		s.quit()
	}
}

// CloseIdle ends idle sessions: those idle longer than IdleTimeout, or
// every one when all is set (shutdown, reload). The worker calls it
// periodically; sessions are also checked when taken.
func (c *Client) CloseIdle(all bool) {
	var ended []*session
	c.mu.Lock()
	for key, list := range c.idle {
		kept := list[:0]
		for _, s := range list {
			if all || time.Since(s.idleSince) >= c.cfg.IdleTimeout {
				ended = append(ended, s)
			} else {
				kept = append(kept, s)
			}
		}
		clear(list[len(kept):])
		if len(kept) == 0 {
			delete(c.idle, key)
		} else {
			c.idle[key] = kept
		}
	}
	c.mu.Unlock()
	for _, s := range ended {
		s.quit()
	}
}

// quit ends an idle session politely: QUIT, without waiting for the 221
// (go-smtp's Quit would wait up to CommandTimeout for it).
func (s *session) quit() {
	s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(s.conn, "QUIT\r\n")
	s.close()
}
