package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDemoPlainWhenNotATerminal: piped into a file or a CI log, the demo
// cleared the screen with escape codes every frame. Only a terminal gets
// the live screen.
func TestDemoPlainWhenNotATerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	require.NoError(t, err)
	defer f.Close()
	require.False(t, isTerminal(f), "a file")
	require.False(t, isTerminal(&bytes.Buffer{}), "a buffer")
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	require.False(t, isTerminal(w), "a pipe")
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		t.Setenv("TERM", "xterm")
		require.True(t, isTerminal(tty), "/dev/tty")
		t.Setenv("TERM", "dumb")
		require.False(t, isTerminal(tty), "TERM=dumb")
	}
}
