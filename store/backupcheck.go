package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
)

// VerifyBackup reads a backup written by Backup to its end and checks its
// header, frames and SHA-256 trailer without restoring it, so a copy cut
// short or altered on the way is found when it is made, not on the day
// it is needed.
func VerifyBackup(ctx context.Context, r io.Reader) error {
	fr := &frameReader{ctx: ctx, r: r, h: sha256.New()}
	hdr := make([]byte, len(backupMagic)+5)
	if err := fr.read(hdr); err != nil {
		return err
	}
	if !bytes.Equal(hdr[:len(backupMagic)], backupMagic) {
		return fmt.Errorf("%w: not a satstream backup", ErrCorrupt)
	}
	if _, err := io.Copy(io.Discard, fr); err != nil {
		return err
	}
	if !fr.done {
		return fmt.Errorf("%w: backup ended early", ErrCorrupt)
	}
	return nil
}
