package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/chzyer/readline"
)

// progress is one line on stderr, rewritten in place, that tells how far
// a long piece of work has come. It shows only when stderr is a terminal
// (a script's stderr gets no carriage returns) and only once the work has
// taken a moment, so quick commands print nothing. Not safe for
// concurrent use.
type progress struct {
	w       io.Writer
	enabled bool
	start   time.Time // of the current piece of work; zero: none yet
	last    time.Time // when the line was last written
	shown   bool
}

// progressDelay is how long work runs before its progress shows;
// progressEvery, how often the line is rewritten.
const (
	progressDelay = 300 * time.Millisecond
	progressEvery = 100 * time.Millisecond
)

func newProgress(stderr io.Writer) *progress {
	return &progress{w: stderr, enabled: isTerminal(stderr)}
}

func (p *progress) on() bool { return p != nil && p.enabled }

// update sets the line to the formatted text, at most every
// progressEvery.
func (p *progress) update(format string, args ...any) {
	if !p.on() {
		return
	}
	now := time.Now()
	if p.start.IsZero() {
		p.start = now
	}
	if now.Sub(p.start) < progressDelay || now.Sub(p.last) < progressEvery {
		return
	}
	p.last, p.shown = now, true
	fmt.Fprintf(p.w, "\r\x1b[K"+format, args...)
}

// now sets the line at once: for work whose progress cannot be counted.
func (p *progress) now(format string, args ...any) {
	if !p.on() {
		return
	}
	p.last, p.shown = time.Now(), true
	fmt.Fprintf(p.w, "\r\x1b[K"+format, args...)
}

// done clears the line; the next update starts a new piece of work.
func (p *progress) done() {
	if p == nil {
		return
	}
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
	p.start, p.last, p.shown = time.Time{}, time.Time{}, false
}

// isTerminal reports whether f is a terminal (not merely a character
// device: /dev/null is one too).
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	return ok && readline.IsTerminal(int(file.Fd()))
}

// byteCount formats n bytes for people: 740 B, 12.3 MB.
func byteCount(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// percent is done out of total as a percentage, for a progress line.
func percent(done, total int64) float64 {
	if total <= 0 {
		return 0
	}
	return 100 * float64(done) / float64(total)
}
